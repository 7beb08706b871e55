/*
 * mkportable's binding to the system zlib: raw deflate of one block into the caller's buffer, the way mksquashfs's
 * gzip wrapper does it (deflateInit2 once, then deflateReset and one deflate(Z_FINISH) per block), so images match
 * mksquashfs's byte for byte in size. Node's own zlib is Chromium's fork, whose deflate makes other (larger)
 * choices at the same level. One stream per strategy is kept per thread (napi instance data), so a block costs no
 * allocation. Synchronous on purpose: mkportable calls it from its own worker threads.
 * Node exports its bundled zlib's symbols to addons, so linking -lz alone would quietly call Node's copy: the system
 * libz.so.1 is opened with RTLD_DEEPBIND and its functions looked up by name. Needs zlib.h (Debian: zlib1g-dev).
 *
 *   deflate(input, out, level, windowBits, memLevel, strategy) -> bytes written to out, or -1 when it does not fit
 *   zlibVersion()                                              -> the system zlib's version string
 */
#include "native.h"
#include <zlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <dlfcn.h>

typedef int (*deflate_init2_fn)(z_streamp, int, int, int, int, int, const char *, int);
typedef int (*stream_fn)(z_streamp);
typedef int (*deflate_fn)(z_streamp, int);
typedef const char *(*version_fn)(void);

static struct {
  bool loaded;
  const char *error;
  deflate_init2_fn init2;
  stream_fn reset, end;
  deflate_fn deflate;
  version_fn version;
} sys;

/* Once per process; every worker thread shares the handle. A race only loads the same library twice. */
static bool load_system_zlib(void) {
  if (sys.loaded) return true;
  void *h = dlopen("libz.so.1", RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
  if (!h) {
    sys.error = "cannot open the system zlib (libz.so.1)";
    return false;
  }
  sys.init2 = (deflate_init2_fn)dlsym(h, "deflateInit2_");
  sys.reset = (stream_fn)dlsym(h, "deflateReset");
  sys.end = (stream_fn)dlsym(h, "deflateEnd");
  sys.deflate = (deflate_fn)dlsym(h, "deflate");
  sys.version = (version_fn)dlsym(h, "zlibVersion");
  if (!sys.init2 || !sys.reset || !sys.end || !sys.deflate || !sys.version) {
    sys.error = "the system zlib lacks deflateInit2_/deflateReset/deflateEnd/deflate/zlibVersion";
    return false;
  }
  sys.loaded = true;
  return true;
}

#define SLOTS 8

typedef struct {
  bool init;
  int level, window_bits, mem_level, strategy;
  z_stream s;
} slot_t;

typedef struct {
  slot_t slots[SLOTS];
  int next_evict;
} state_t;

static void finalize_state(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  state_t *st = data;
  for (int i = 0; i < SLOTS; i++)
    if (st->slots[i].init) sys.end(&st->slots[i].s);
  free(st);
}

static state_t *get_state(napi_env env) {
  state_t *st = NULL;
  if (napi_get_instance_data(env, (void **)&st) == napi_ok && st) return st;
  st = calloc(1, sizeof *st);
  if (!st) return NULL;
  if (napi_set_instance_data(env, st, finalize_state, NULL) != napi_ok) {
    free(st);
    return NULL;
  }
  return st;
}

static z_stream *stream_for(napi_env env, int level, int window_bits, int mem_level, int strategy) {
  state_t *st = get_state(env);
  if (!st) return NULL;
  slot_t *free_slot = NULL;
  for (int i = 0; i < SLOTS; i++) {
    slot_t *s = &st->slots[i];
    if (!s->init) {
      if (!free_slot) free_slot = s;
      continue;
    }
    if (s->level == level && s->window_bits == window_bits && s->mem_level == mem_level && s->strategy == strategy) return &s->s;
  }
  if (!free_slot) {
    free_slot = &st->slots[st->next_evict];
    st->next_evict = (st->next_evict + 1) % SLOTS;
    sys.end(&free_slot->s);
    free_slot->init = false;
  }
  free_slot->s.zalloc = Z_NULL;
  free_slot->s.zfree = Z_NULL;
  free_slot->s.opaque = Z_NULL;
  if (sys.init2(&free_slot->s, level, Z_DEFLATED, window_bits, mem_level, strategy, ZLIB_VERSION, (int)sizeof(z_stream)) != Z_OK)
    return NULL;
  free_slot->init = true;
  free_slot->level = level;
  free_slot->window_bits = window_bits;
  free_slot->mem_level = mem_level;
  free_slot->strategy = strategy;
  return &free_slot->s;
}

napi_value zlib_deflate(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 6) {
    napi_throw_type_error(env, NULL, "deflate(input, out, level, windowBits, memLevel, strategy) needs 6 arguments");
    return NULL;
  }
  uint8_t *in, *out;
  size_t in_len, out_len;
  uint32_t level, window_bits, mem_level, strategy;
  if (!get_bytes(env, argv[0], "input", &in, &in_len) || !get_bytes(env, argv[1], "out", &out, &out_len) ||
      !get_u32(env, argv[2], "level", &level) || !get_u32(env, argv[3], "windowBits", &window_bits) ||
      !get_u32(env, argv[4], "memLevel", &mem_level) || !get_u32(env, argv[5], "strategy", &strategy))
    return NULL;
  if (!load_system_zlib()) {
    napi_throw_error(env, "ZLIB_UNAVAILABLE", sys.error);
    return NULL;
  }
  z_stream *s = stream_for(env, (int)level, (int)window_bits, (int)mem_level, (int)strategy);
  if (!s) {
    napi_throw_error(env, "Z_STREAM_ERROR", "deflateInit2 failed (bad level, window, memory level or strategy)");
    return NULL;
  }
  if (sys.reset(s) != Z_OK) {
    napi_throw_error(env, "Z_STREAM_ERROR", "deflateReset failed");
    return NULL;
  }
  s->next_in = in;
  s->avail_in = (uInt)in_len;
  s->next_out = out;
  s->avail_out = (uInt)out_len;
  int r = sys.deflate(s, Z_FINISH);
  if (r == Z_STREAM_END) return make_number(env, (double)s->total_out);
  if (r == Z_OK || r == Z_BUF_ERROR) return make_number(env, -1); /* out is full: not worth storing compressed */
  napi_throw_error(env, "Z_STREAM_ERROR", "deflate failed");
  return NULL;
}

napi_value zlib_library_version(napi_env env, napi_callback_info info) {
  (void)info;
  if (!load_system_zlib()) {
    napi_throw_error(env, "ZLIB_UNAVAILABLE", sys.error);
    return NULL;
  }
  napi_value r;
  napi_create_string_utf8(env, sys.version(), NAPI_AUTO_LENGTH, &r);
  return r;
}

