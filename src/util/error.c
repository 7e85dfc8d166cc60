/* Error codes to text. */
#include "util/error.h"

#include <uv.h>

const char *mc_strerror(int code)
{
    switch (code) {
    case 0:
        return "ok";
#define MC_ERROR_CASE(name, value, text)                                                           \
    case value:                                                                                    \
        return text;
        MC_ERROR_MAP(MC_ERROR_CASE)
#undef MC_ERROR_CASE
    default:
        return uv_strerror(code);
    }
}
