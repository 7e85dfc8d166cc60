/* A fixed-size latency histogram with log-linear buckets (HdrHistogram's idea, in base 10):
 * each decade of microseconds is cut into nine equal steps, so every bucket is at most ~10 %
 * wide relative to its values and every Prometheus-style boundary (1, 2, 5 × 10^k µs) is a
 * bucket edge, which makes the exported `le` counts exact. Recording is an index computation
 * and three increments: no allocation, no lock. */
#ifndef MC_STATS_HISTOGRAM_H
#define MC_STATS_HISTOGRAM_H

#include <stddef.h>
#include <stdint.h>

/* Decade 0 holds 0..10 µs in ten buckets; decades 1..7 (to 100 s) nine each; one overflow. */
#define MC_HISTOGRAM_DECADES 8
#define MC_HISTOGRAM_BUCKETS (10 + (MC_HISTOGRAM_DECADES - 1) * 9 + 1)

struct mc_histogram {
    uint64_t count;
    uint64_t sum_us;
    uint64_t max_us;
    uint64_t buckets[MC_HISTOGRAM_BUCKETS];
};

/* The bucket a value of us microseconds falls in: bucket i holds the values v with
 * upper(i-1) < v <= upper(i) (upper(-1) = -1), the last one everything above 100 s. */
size_t mc_histogram_bucket_of(uint64_t us);
/* The inclusive upper bound of bucket i in microseconds; UINT64_MAX for the overflow. */
uint64_t mc_histogram_upper_us(size_t i);
/* Adds one value. */
void mc_histogram_record(struct mc_histogram *h, uint64_t us);
/* How many values are <= le_us; exact when le_us is a bucket edge (d × 10^k µs, d = 1..10). */
uint64_t mc_histogram_count_le(const struct mc_histogram *h, uint64_t le_us);
/* The q-quantile (0 < q <= 1) in microseconds: the value of rank ceil(q × count), placed
 * linearly inside its bucket and never above the largest value recorded; 0 when empty. */
uint64_t mc_histogram_quantile(const struct mc_histogram *h, double q);

#endif
