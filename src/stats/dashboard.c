/* The dashboard page served by GET /stats (placeholder). */
#include "stats/stats.h"
const char mc_stats_dashboard_html[] = "<html></html>";
const size_t mc_stats_dashboard_html_len = sizeof mc_stats_dashboard_html - 1;
