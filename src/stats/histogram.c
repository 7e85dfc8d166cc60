/* Log-linear latency histogram (see histogram.h). */
#include "stats/histogram.h"

static const uint64_t pow10_us[MC_HISTOGRAM_DECADES + 1] = {
    1, 10, 100, 1000, 10000, 100000, 1000000, 10000000, 100000000,
};

/* Values are shifted down by one so that each bucket is closed above: v in (a, b] maps to
 * key v - 1 in [a, b), and the decade and step of the key are plain integer arithmetic. */
size_t mc_histogram_bucket_of(uint64_t us)
{
    uint64_t key = us ? us - 1 : 0;
    if (key < 10)
        return (size_t)key;
    for (size_t d = 1; d < MC_HISTOGRAM_DECADES; d++)
        if (key < pow10_us[d + 1])
            return 10 + (d - 1) * 9 + (size_t)(key / pow10_us[d]) - 1;
    return MC_HISTOGRAM_BUCKETS - 1;
}

uint64_t mc_histogram_upper_us(size_t i)
{
    if (i < 10)
        return i + 1;
    if (i >= MC_HISTOGRAM_BUCKETS - 1)
        return UINT64_MAX;
    size_t d = 1 + (i - 10) / 9, step = 1 + (i - 10) % 9;
    return (step + 1) * pow10_us[d];
}

void mc_histogram_record(struct mc_histogram *h, uint64_t us)
{
    h->buckets[mc_histogram_bucket_of(us)]++;
    h->count++;
    h->sum_us += us;
    if (us > h->max_us)
        h->max_us = us;
}

uint64_t mc_histogram_count_le(const struct mc_histogram *h, uint64_t le_us)
{
    uint64_t n = 0;
    for (size_t i = 0; i < MC_HISTOGRAM_BUCKETS && mc_histogram_upper_us(i) <= le_us; i++)
        n += h->buckets[i];
    return n;
}

uint64_t mc_histogram_quantile(const struct mc_histogram *h, double q)
{
    if (h->count == 0)
        return 0;
    double want = q * (double)h->count; /* rounded up: no libm for one ceil */
    uint64_t rank = want > 0 ? (uint64_t)want : 0;
    if ((double)rank < want)
        rank++;
    if (rank < 1)
        rank = 1;
    if (rank > h->count)
        rank = h->count;
    uint64_t seen = 0;
    for (size_t i = 0; i < MC_HISTOGRAM_BUCKETS; i++) {
        if (seen + h->buckets[i] >= rank) {
            /* linear within the bucket (its values are assumed spread evenly), then clamped
             * to the largest value seen: one bucket's width is the whole error */
            uint64_t lower = i ? mc_histogram_upper_us(i - 1) : 0;
            uint64_t upper = i + 1 < MC_HISTOGRAM_BUCKETS ? mc_histogram_upper_us(i) : h->max_us;
            double frac = (double)(rank - seen) / (double)h->buckets[i];
            uint64_t v = lower + (uint64_t)((double)(upper - lower) * frac + 0.5);
            return v < h->max_us ? v : h->max_us;
        }
        seen += h->buckets[i];
    }
    return h->max_us;
}
