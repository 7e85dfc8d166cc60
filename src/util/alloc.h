/* Allocation wrappers: out of memory is decided once, here, by aborting with a message
 * (as Redis's zmalloc does), so no caller carries an ENOMEM path. */
#ifndef MC_UTIL_ALLOC_H
#define MC_UTIL_ALLOC_H

#include <stddef.h>

/* Each returns memory the caller owns and releases with mc_free(); none returns NULL. */
void *mc_malloc(size_t size);
void *mc_calloc(size_t count, size_t size);
void *mc_realloc(void *ptr, size_t size);
char *mc_strdup(const char *s);
char *mc_strndup(const char *s, size_t n);
/* Formats like sprintf into a new string the caller frees. */
char *mc_sprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void mc_free(void *ptr);

#endif
