#include "util/decay.h"

#define LN2 0.69314718055994530942

double mc_exp_neg(double x)
{
    if (!(x > 0))
        return 1.0;
    if (x > 745.0)
        return 0.0;
    /* e^-x = 2^-k * e^-r with r = x - k ln 2 in [0, ln 2): the series of e^-r converges fast
     * there (the 16th term is below 1e-16), and halving k times is exact in binary. */
    int k = (int)(x / LN2);
    double r = x - k * LN2, term = 1.0, sum = 1.0;
    for (int n = 1; n <= 16; n++) {
        term *= -r / n;
        sum += term;
    }
    while (k-- > 0)
        sum *= 0.5;
    return sum;
}
