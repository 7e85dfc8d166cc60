/* Incremental UTF-8 validation (RFC 3629): text frames and close reasons arrive in pieces,
 * so the validator keeps its state between calls and never allocates. */
#ifndef MC_WS_UTF8_H
#define MC_WS_UTF8_H

#include <stddef.h>
#include <stdint.h>

/* Embedded by the caller; no _close needed (it owns nothing). */
struct mc_utf8 {
    uint32_t state; /* private: 0 = at a character boundary */
};

/* Starts a new text (at a character boundary). */
void mc_utf8_init(struct mc_utf8 *u);

/* Feeds n bytes (p may be NULL when n is 0). Returns 0 while everything seen so far can be
 * the start of valid UTF-8, -1 as soon as it cannot (overlong forms, surrogates U+D800..DFFF,
 * code points over U+10FFFF, stray continuation bytes, bytes C0, C1, F5..FF). Once -1 it
 * stays -1 until mc_utf8_init(). */
int mc_utf8_feed(struct mc_utf8 *u, const uint8_t *p, size_t n);

/* Returns 1 if the bytes fed so far end at a character boundary (a whole valid text), 0 if
 * a sequence is unfinished or the input was invalid. */
int mc_utf8_complete(const struct mc_utf8 *u);

/* One-shot check of a whole buffer: 1 if it is complete valid UTF-8, else 0. */
int mc_utf8_valid(const uint8_t *p, size_t n);

#endif
