/* Incremental UTF-8 validator: an explicit state machine over RFC 3629's table of
 * well-formed byte sequences (equivalent to Hoehrmann's DFA, written out so each state
 * names the byte range it still accepts). */
#include "ws/utf8.h"

enum {
    S_ACCEPT = 0, /* at a character boundary */
    S_TAIL1,      /* one more 80..BF */
    S_TAIL2,      /* two more 80..BF */
    S_TAIL3,      /* three more 80..BF */
    S_E0,         /* after E0: A0..BF (shorter would be overlong), then one tail */
    S_ED,         /* after ED: 80..9F (A0..BF would be a surrogate), then one tail */
    S_F0,         /* after F0: 90..BF (shorter would be overlong), then two tails */
    S_F4,         /* after F4: 80..8F (more would pass U+10FFFF), then two tails */
    S_REJECT,
};

void mc_utf8_init(struct mc_utf8 *u)
{
    u->state = S_ACCEPT;
}

static uint32_t lead(uint8_t c)
{
    if (c < 0x80)
        return S_ACCEPT;
    if (c >= 0xC2 && c <= 0xDF)
        return S_TAIL1;
    if (c == 0xE0)
        return S_E0;
    if (c == 0xED)
        return S_ED;
    if (c >= 0xE1 && c <= 0xEF)
        return S_TAIL2;
    if (c == 0xF0)
        return S_F0;
    if (c >= 0xF1 && c <= 0xF3)
        return S_TAIL3;
    if (c == 0xF4)
        return S_F4;
    return S_REJECT; /* 80..BF stray tail, C0/C1 overlong, F5..FF beyond U+10FFFF */
}

static uint32_t step(uint32_t state, uint8_t c)
{
    switch (state) {
    case S_ACCEPT:
        return lead(c);
    case S_TAIL1:
        return (c & 0xC0) == 0x80 ? S_ACCEPT : S_REJECT;
    case S_TAIL2:
        return (c & 0xC0) == 0x80 ? S_TAIL1 : S_REJECT;
    case S_TAIL3:
        return (c & 0xC0) == 0x80 ? S_TAIL2 : S_REJECT;
    case S_E0:
        return c >= 0xA0 && c <= 0xBF ? S_TAIL1 : S_REJECT;
    case S_ED:
        return c >= 0x80 && c <= 0x9F ? S_TAIL1 : S_REJECT;
    case S_F0:
        return c >= 0x90 && c <= 0xBF ? S_TAIL2 : S_REJECT;
    case S_F4:
        return c >= 0x80 && c <= 0x8F ? S_TAIL2 : S_REJECT;
    default:
        return S_REJECT;
    }
}

int mc_utf8_feed(struct mc_utf8 *u, const uint8_t *p, size_t n)
{
    uint32_t state = u->state;
    for (size_t i = 0; i < n && state != S_REJECT; i++) {
        /* ASCII runs are the common case in JSON text: skip them without the switch. */
        if (state == S_ACCEPT && p[i] < 0x80)
            continue;
        state = step(state, p[i]);
    }
    u->state = state;
    return state == S_REJECT ? -1 : 0;
}

int mc_utf8_complete(const struct mc_utf8 *u)
{
    return u->state == S_ACCEPT;
}

int mc_utf8_valid(const uint8_t *p, size_t n)
{
    struct mc_utf8 u;
    mc_utf8_init(&u);
    return mc_utf8_feed(&u, p, n) == 0 && mc_utf8_complete(&u);
}
