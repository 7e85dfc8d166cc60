/* micro: wiring only. */
int main(void)
{
    return 0;
}
