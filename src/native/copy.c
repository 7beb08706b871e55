/*
 * copy(dst, at, src, start, end) -> undefined: dst[at..] = src[start, end), with memmove.
 *
 * V8 copies between typed arrays over a SharedArrayBuffer with a relaxed-atomic word loop (so that another thread
 * writing meanwhile stays defined behaviour), several times slower than memmove. The writer's arena is shared
 * memory, but only one thread touches a slot at a time (the slot's owner hands it over by message), so a plain
 * memmove is right for it. Bounds are checked: a bad range throws a RangeError instead of copying.
 */
#include "native.h"
#include <string.h>

napi_value mem_copy(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  uint8_t *dst, *src;
  size_t dst_len, src_len;
  int64_t at, start, end;
  if (!get_args(env, info, 5, argv, "copy needs (dst, at, src, start, end)") ||
      !get_bytes(env, argv[0], "dst", &dst, &dst_len) || !get_i64(env, argv[1], "at", &at) ||
      !get_bytes(env, argv[2], "src", &src, &src_len) || !get_i64(env, argv[3], "start", &start) ||
      !get_i64(env, argv[4], "end", &end))
    return NULL;
  if (start < 0 || end < start || (uint64_t)end > src_len || at < 0 || (uint64_t)(at + (end - start)) > dst_len) {
    napi_throw_range_error(env, NULL, "copy: range out of bounds");
    return NULL;
  }
  if (end > start) memmove(dst + at, src + start, (size_t)(end - start));
  return NULL;
}
