/* Exponential decay without libm: the load balancer's only transcendental function would
 * otherwise map all of libm (0.3 MiB of RSS in every process) for one call. */
#ifndef MC_UTIL_DECAY_H
#define MC_UTIL_DECAY_H

/* e^-x for x >= 0 (a negative or NaN x counts as 0: weight 1), relative error below 1e-12;
 * 0 past x = 745, where a double underflows. Owns nothing. */
double mc_exp_neg(double x);

#endif
