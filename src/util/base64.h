/* Standard base64 (RFC 4648 section 4: "A-Za-z0-9+/", "=" padding), as a codec over caller
 * buffers: it never allocates, so the broker can encode straight into a message's JSON. */
#ifndef MC_UTIL_BASE64_H
#define MC_UTIL_BASE64_H

#include <stddef.h>

/* Characters that mc_base64_encode() writes for len input bytes (padding included, no NUL).
 * Returns 0 when that count would overflow size_t, which only an absurd len can cause. */
size_t mc_base64_encoded_len(size_t len);

/* Encodes len bytes of in (may be NULL when len is 0) into out, which must have room for
 * mc_base64_encoded_len(len) characters. Writes no NUL. Returns the characters written. */
size_t mc_base64_encode(char *out, const void *in, size_t len);

/* An upper bound of the bytes mc_base64_decode() writes for len input characters. */
size_t mc_base64_decoded_max(size_t len);

/* Decodes len characters of in into out (room for mc_base64_decoded_max(len) bytes) and sets
 * *out_len. Strict, so a message has one spelling: the length must be a multiple of 4, only
 * the alphabet is allowed (no whitespace), "=" only as the final one or two characters, and
 * the bits the padding discards must be zero. Returns 0, or MC_EINVAL on bad input (out then
 * holds garbage and *out_len is untouched). */
int mc_base64_decode(void *out, size_t *out_len, const char *in, size_t len);

#endif
