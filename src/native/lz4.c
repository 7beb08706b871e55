/*
 * mkportable's binding to the system liblz4 (liblz4.so.1, which every systemd host has: libsystemd links it), the
 * library mksquashfs uses. The lz4 npm package's own copy is about a third as fast on this machine's 128 KiB blocks,
 * and on trees of small files lz4's cost is most of a build's. The library is opened at run time, so building the
 * addon needs no lz4 headers; LZ4's block API has kept these signatures since r129.
 *
 *   lz4Compress(input, out, limit, level) -> bytes written to out (at most limit), or 0 when the result would not
 *                                            fit; level 0: LZ4_compress_default, else LZ4_compress_HC at that level
 *   lz4Version()                          -> the library's version string; throws when liblz4.so.1 is not there
 */
#include "native.h"
#include <dlfcn.h>

typedef int (*compress_fn)(const char *src, char *dst, int src_size, int dst_capacity);
typedef int (*compress_hc_fn)(const char *src, char *dst, int src_size, int dst_capacity, int level);
typedef const char *(*version_fn)(void);

static struct {
  bool loaded;
  compress_fn compress;
  compress_hc_fn compress_hc;
  version_fn version;
} sys;

static const char *const MISSING = "cannot open the system liblz4 (liblz4.so.1) or it lacks LZ4_compress_default/LZ4_compress_HC";

/* Once per process; a race between threads only opens the same library twice. */
static bool load_system_lz4(void) {
  if (sys.loaded) return true;
  void *h = dlopen("liblz4.so.1", RTLD_NOW | RTLD_LOCAL);
  if (!h) return false;
  sys.compress = (compress_fn)dlsym(h, "LZ4_compress_default");
  sys.compress_hc = (compress_hc_fn)dlsym(h, "LZ4_compress_HC");
  sys.version = (version_fn)dlsym(h, "LZ4_versionString");
  if (!sys.compress || !sys.compress_hc || !sys.version) return false;
  sys.loaded = true;
  return true;
}

int lz4_trial(const uint8_t *src, size_t n, uint8_t *dst, size_t cap) {
  if (n > 0x7e000000u || cap > 0x7e000000u || !load_system_lz4()) return -1;
  int r = sys.compress((const char *)src, (char *)dst, (int)n, (int)cap);
  return r > 0 ? r : 0;
}

napi_value lz4_compress(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 4) {
    napi_throw_type_error(env, NULL, "lz4Compress(input, out, limit, level) needs 4 arguments");
    return NULL;
  }
  uint8_t *in, *out;
  size_t in_len, out_len;
  uint32_t limit, level;
  if (!get_bytes(env, argv[0], "input", &in, &in_len) || !get_bytes(env, argv[1], "out", &out, &out_len) ||
      !get_u32(env, argv[2], "limit", &limit) || !get_u32(env, argv[3], "level", &level))
    return NULL;
  if (in_len > 0x7e000000u) {
    napi_throw_range_error(env, NULL, "lz4Compress: input too large");
    return NULL;
  }
  if (limit > out_len) limit = (uint32_t)out_len;
  if (!load_system_lz4()) {
    napi_throw_error(env, "LZ4_UNAVAILABLE", MISSING);
    return NULL;
  }
  int n = level == 0 ? sys.compress((const char *)in, (char *)out, (int)in_len, (int)limit)
                     : sys.compress_hc((const char *)in, (char *)out, (int)in_len, (int)limit, (int)level);
  return make_number(env, n > 0 ? (double)n : 0);
}

napi_value lz4_library_version(napi_env env, napi_callback_info info) {
  (void)info;
  if (!load_system_lz4()) {
    napi_throw_error(env, "LZ4_UNAVAILABLE", MISSING);
    return NULL;
  }
  napi_value r;
  napi_create_string_utf8(env, sys.version(), NAPI_AUTO_LENGTH, &r);
  return r;
}
