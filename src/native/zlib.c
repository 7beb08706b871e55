/*
 * mkportable's gzip engines: a zlib stream (RFC 1950) of one block into the caller's buffer. The system zlib is
 * used the way mksquashfs's gzip wrapper uses it (deflateInit2 once, then deflateReset and one deflate(Z_FINISH) per
 * block), so images match mksquashfs's byte for byte in size. Node's own zlib is Chromium's fork, whose deflate
 * makes other (larger) choices at the same level. One stream per strategy is kept per thread (napi instance
 * data), so a block costs no allocation. Synchronous on purpose: mkportable calls it from its own worker threads.
 * Node exports its bundled zlib's symbols to addons, so linking -lz alone would quietly call Node's copy: the system
 * libz.so.1 is opened with RTLD_DEEPBIND and its functions looked up by name. Node's own copy is the other engine
 * (its symbols looked up in the process): the same streams as zlib.deflateSync, without a new stream, its
 * allocations and a JavaScript round trip per block. Needs zlib.h (Debian: zlib1g-dev).
 * The third engine is the system libdeflate (libdeflate.so.0, opened at run time, so no headers are needed): a
 * whole-buffer DEFLATE that finds better matches than zlib in a fraction of its time. It has a 32 KiB window and no
 * strategies or memory levels, so it takes only windowBits 15, memLevel 8 and the default strategy; its levels are
 * its own (1-12), which gzip.ts maps from zlib's.
 *
 *   deflate(input, out, level, windowBits, memLevel, strategy, engine?) -> bytes written to out, or -1 when it
 *                                                                          does not fit; engine 0 (default) is the
 *                                                                          system zlib, 1 Node's bundled one, 2
 *                                                                          libdeflate
 *   zlibVersion(engine?)                                                -> that zlib's version string; libdeflate
 *                                                                          exports none: the path of the file loaded
 */
#define _GNU_SOURCE /* dladdr */
#include "native.h"
#include <zlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <dlfcn.h>
#include <string.h>

typedef int (*deflate_init2_fn)(z_streamp, int, int, int, int, int, const char *, int);
typedef int (*stream_fn)(z_streamp);
typedef int (*deflate_fn)(z_streamp, int);
typedef const char *(*version_fn)(void);
typedef void *(*ldf_alloc_fn)(int level);
typedef size_t (*ldf_compress_fn)(void *c, const void *in, size_t in_n, void *out, size_t out_n);
typedef void (*ldf_free_fn)(void *c);

enum { SYSTEM_ZLIB, NODE_ZLIB, LIBDEFLATE, ENGINES };

typedef struct {
  bool loaded;
  const char *error;
  deflate_init2_fn init2;
  stream_fn reset, end;
  deflate_fn deflate;
  version_fn version;
  ldf_alloc_fn ldf_alloc;
  ldf_compress_fn ldf_compress;
  ldf_free_fn ldf_free;
  char path[4096];
} zlib_lib_t;

static zlib_lib_t libs[ENGINES];

static zlib_lib_t *load_libdeflate(void) {
  zlib_lib_t *z = &libs[LIBDEFLATE];
  void *h = dlopen("libdeflate.so.0", RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    z->error = "cannot open the system libdeflate (libdeflate.so.0)";
    return NULL;
  }
  z->ldf_alloc = (ldf_alloc_fn)dlsym(h, "libdeflate_alloc_compressor");
  z->ldf_compress = (ldf_compress_fn)dlsym(h, "libdeflate_zlib_compress");
  z->ldf_free = (ldf_free_fn)dlsym(h, "libdeflate_free_compressor");
  Dl_info info;
  if (!z->ldf_alloc || !z->ldf_compress || !z->ldf_free || !dladdr((void *)z->ldf_compress, &info) || !info.dli_fname) {
    z->error = "the system libdeflate lacks libdeflate_alloc_compressor/libdeflate_zlib_compress/libdeflate_free_compressor";
    return NULL;
  }
  snprintf(z->path, sizeof z->path, "%s", info.dli_fname);
  z->loaded = true;
  return z;
}

/* Once per process; every worker thread shares the handles. A race only looks the same functions up twice. */
static zlib_lib_t *load_zlib(int engine) {
  zlib_lib_t *z = &libs[engine];
  if (z->loaded) return z;
  if (engine == LIBDEFLATE) return load_libdeflate();
  void *h = engine == SYSTEM_ZLIB ? dlopen("libz.so.1", RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND) : RTLD_DEFAULT;
  if (engine == SYSTEM_ZLIB && !h) {
    z->error = "cannot open the system zlib (libz.so.1)";
    return NULL;
  }
  z->init2 = (deflate_init2_fn)dlsym(h, "deflateInit2_");
  z->reset = (stream_fn)dlsym(h, "deflateReset");
  z->end = (stream_fn)dlsym(h, "deflateEnd");
  z->deflate = (deflate_fn)dlsym(h, "deflate");
  z->version = (version_fn)dlsym(h, "zlibVersion");
  if (!z->init2 || !z->reset || !z->end || !z->deflate || !z->version) {
    z->error = engine == SYSTEM_ZLIB ? "the system zlib lacks deflateInit2_/deflateReset/deflateEnd/deflate/zlibVersion"
                                     : "this Node does not export its zlib to addons";
    return NULL;
  }
  z->loaded = true;
  return z;
}

/* The engine argument at argv[i] (absent: the system zlib); -1 with an exception pending when it is not 0 or 1. */
static int engine_arg(napi_env env, size_t argc, napi_value *argv, size_t i) {
  uint32_t e = SYSTEM_ZLIB;
  if (argc > i && !get_u32(env, argv[i], "engine", &e)) return -1;
  if (e >= ENGINES) {
    napi_throw_range_error(env, NULL, "engine must be 0 (system zlib), 1 (Node's zlib) or 2 (libdeflate)");
    return -1;
  }
  return (int)e;
}

#define SLOTS 8

typedef struct {
  bool init;
  int engine, level, window_bits, mem_level, strategy;
  z_stream s;
  void *ldf; /* libdeflate's compressor, for that engine */
} slot_t;

typedef struct {
  slot_t slots[SLOTS];
  int next_evict;
} state_t;

static void end_slot(slot_t *s) {
  if (s->engine == LIBDEFLATE) libs[LIBDEFLATE].ldf_free(s->ldf);
  else libs[s->engine].end(&s->s);
  s->init = false;
}

static void finalize_state(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  state_t *st = data;
  for (int i = 0; i < SLOTS; i++)
    if (st->slots[i].init) end_slot(&st->slots[i]);
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

static slot_t *slot_for(napi_env env, int engine, int level, int window_bits, int mem_level, int strategy) {
  state_t *st = get_state(env);
  if (!st) return NULL;
  slot_t *free_slot = NULL;
  for (int i = 0; i < SLOTS; i++) {
    slot_t *s = &st->slots[i];
    if (!s->init) {
      if (!free_slot) free_slot = s;
      continue;
    }
    if (s->engine == engine && s->level == level && s->window_bits == window_bits && s->mem_level == mem_level &&
        s->strategy == strategy)
      return s;
  }
  if (!free_slot) {
    free_slot = &st->slots[st->next_evict];
    st->next_evict = (st->next_evict + 1) % SLOTS;
    end_slot(free_slot);
  }
  if (engine == LIBDEFLATE) {
    free_slot->ldf = libs[LIBDEFLATE].ldf_alloc(level);
    if (!free_slot->ldf) return NULL;
  } else {
    free_slot->s.zalloc = Z_NULL;
  free_slot->s.zfree = Z_NULL;
  free_slot->s.opaque = Z_NULL;
    if (libs[engine].init2(&free_slot->s, level, Z_DEFLATED, window_bits, mem_level, strategy, ZLIB_VERSION, (int)sizeof(z_stream)) != Z_OK)
      return NULL;
  }
  free_slot->init = true;
  free_slot->engine = engine;
  free_slot->level = level;
  free_slot->window_bits = window_bits;
  free_slot->mem_level = mem_level;
  free_slot->strategy = strategy;
  return free_slot;
}

napi_value zlib_deflate(napi_env env, napi_callback_info info) {
  size_t argc = 7;
  napi_value argv[7];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 6) {
    napi_throw_type_error(env, NULL, "deflate(input, out, level, windowBits, memLevel, strategy, engine?) needs 6 arguments");
    return NULL;
  }
  uint8_t *in, *out;
  size_t in_len, out_len;
  uint32_t level, window_bits, mem_level, strategy;
  if (!get_bytes(env, argv[0], "input", &in, &in_len) || !get_bytes(env, argv[1], "out", &out, &out_len) ||
      !get_u32(env, argv[2], "level", &level) || !get_u32(env, argv[3], "windowBits", &window_bits) ||
      !get_u32(env, argv[4], "memLevel", &mem_level) || !get_u32(env, argv[5], "strategy", &strategy))
    return NULL;
  int engine = engine_arg(env, argc, argv, 6);
  if (engine < 0) return NULL;
  zlib_lib_t *z = load_zlib(engine);
  if (!z) {
    napi_throw_error(env, "ZLIB_UNAVAILABLE", libs[engine].error);
    return NULL;
  }
  if (engine == LIBDEFLATE && (level < 1 || level > 12 || window_bits != 15 || mem_level != 8 || strategy != Z_DEFAULT_STRATEGY)) {
    napi_throw_range_error(env, NULL, "libdeflate takes levels 1 to 12, windowBits 15, memLevel 8 and the default strategy only");
    return NULL;
  }
  slot_t *slot = slot_for(env, engine, (int)level, (int)window_bits, (int)mem_level, (int)strategy);
  if (!slot) {
    napi_throw_error(env, "Z_STREAM_ERROR", engine == LIBDEFLATE ? "libdeflate_alloc_compressor failed"
                                                                : "deflateInit2 failed (bad level, window, memory level or strategy)");
    return NULL;
  }
  if (engine == LIBDEFLATE) {
    size_t n = z->ldf_compress(slot->ldf, in, in_len, out, out_len);
    return make_number(env, n == 0 ? -1 : (double)n); /* 0: it does not fit in out */
  }
  z_stream *s = &slot->s;
  if (z->reset(s) != Z_OK) {
    napi_throw_error(env, "Z_STREAM_ERROR", "deflateReset failed");
    return NULL;
  }
  s->next_in = in;
  s->avail_in = (uInt)in_len;
  s->next_out = out;
  s->avail_out = (uInt)out_len;
  int r = z->deflate(s, Z_FINISH);
  if (r == Z_STREAM_END) return make_number(env, (double)s->total_out);
  if (r == Z_OK || r == Z_BUF_ERROR) return make_number(env, -1); /* out is full: not worth storing compressed */
  napi_throw_error(env, "Z_STREAM_ERROR", "deflate failed");
  return NULL;
}

napi_value zlib_library_version(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int engine = engine_arg(env, argc, argv, 0);
  if (engine < 0) return NULL;
  zlib_lib_t *z = load_zlib(engine);
  if (!z) {
    napi_throw_error(env, "ZLIB_UNAVAILABLE", libs[engine].error);
    return NULL;
  }
  napi_value r;
  napi_create_string_utf8(env, engine == LIBDEFLATE ? z->path : z->version(), NAPI_AUTO_LENGTH, &r);
  return r;
}

