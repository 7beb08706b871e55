/*
 * xz: mkportable's binding to the system liblzma. Two synchronous one-call functions, the same liblzma calls mksquashfs
 * makes (lzma_stream_buffer_encode / lzma_stream_buffer_decode), so a block costs what it costs in mksquashfs and
 * decoding can never write past the caller's buffer. Synchronous on purpose: mkportable calls it from its own
 * worker threads. No global state, so it loads in any number of worker threads (NAPI_MODULE_INIT is context-aware).
 * Needs lzma.h (Debian: liblzma-dev) and links the system liblzma.
 *
 *   encode(input, bcjFilterId, dictSize, out) -> bytes written to out, or -1 when the stream does not fit in out
 *   decode(input, out)                       -> bytes written to out; throws when corrupt or when out is too small
 *   version()                                -> liblzma's version string
 */
#include "native.h"
#include <lzma.h>
#include <stdio.h>

/* mksquashfs compresses with liblzma's preset 6 (LZMA_PRESET_DEFAULT) and replaces only the dictionary size. */
#define XZ_PRESET 6
/* Decoding a squashfs block needs at most a 1 MiB dictionary; this only stops absurd headers from allocating. */
#define DECODE_MEMLIMIT ((uint64_t)256 << 20)

static const char *lzma_ret_name(lzma_ret r) {
  switch (r) {
    case LZMA_MEM_ERROR: return "LZMA_MEM_ERROR";
    case LZMA_MEMLIMIT_ERROR: return "LZMA_MEMLIMIT_ERROR";
    case LZMA_FORMAT_ERROR: return "LZMA_FORMAT_ERROR";
    case LZMA_OPTIONS_ERROR: return "LZMA_OPTIONS_ERROR";
    case LZMA_DATA_ERROR: return "LZMA_DATA_ERROR";
    case LZMA_BUF_ERROR: return "LZMA_BUF_ERROR";
    case LZMA_PROG_ERROR: return "LZMA_PROG_ERROR";
    case LZMA_UNSUPPORTED_CHECK: return "LZMA_UNSUPPORTED_CHECK";
    default: return "LZMA_ERROR";
  }
}

static napi_value throw_lzma(napi_env env, const char *what, lzma_ret r) {
  char msg[128];
  snprintf(msg, sizeof msg, "%s failed: %s (%d)", what, lzma_ret_name(r), (int)r);
  napi_throw_error(env, lzma_ret_name(r), msg);
  return NULL;
}

napi_value xz_encode(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 4) {
    napi_throw_type_error(env, NULL, "encode(input, bcj, dictSize, out) needs 4 arguments");
    return NULL;
  }
  uint8_t *in, *out;
  size_t in_len, out_len;
  uint32_t bcj, dict;
  if (!get_bytes(env, argv[0], "input", &in, &in_len) || !get_u32(env, argv[1], "bcj", &bcj) ||
      !get_u32(env, argv[2], "dictSize", &dict) || !get_bytes(env, argv[3], "out", &out, &out_len))
    return NULL;

  lzma_options_lzma opt;
  if (lzma_lzma_preset(&opt, XZ_PRESET)) return throw_lzma(env, "lzma_lzma_preset", LZMA_OPTIONS_ERROR);
  opt.dict_size = dict;

  lzma_filter filters[3];
  int n = 0;
  if (bcj != 0) {
    filters[n].id = bcj;
    filters[n].options = NULL;
    n++;
  }
  filters[n].id = LZMA_FILTER_LZMA2;
  filters[n].options = &opt;
  n++;
  filters[n].id = LZMA_VLI_UNKNOWN;
  filters[n].options = NULL;

  size_t out_pos = 0;
  lzma_ret r = lzma_stream_buffer_encode(filters, LZMA_CHECK_CRC32, NULL, in, in_len, out, &out_pos, out_len);
  if (r == LZMA_BUF_ERROR) return make_number(env, -1);
  if (r != LZMA_OK) return throw_lzma(env, "lzma_stream_buffer_encode", r);
  return make_number(env, (double)out_pos);
}

napi_value xz_decode(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 2) {
    napi_throw_type_error(env, NULL, "decode(input, out) needs 2 arguments");
    return NULL;
  }
  uint8_t *in, *out;
  size_t in_len, out_len;
  if (!get_bytes(env, argv[0], "input", &in, &in_len) || !get_bytes(env, argv[1], "out", &out, &out_len)) return NULL;

  uint64_t memlimit = DECODE_MEMLIMIT;
  size_t in_pos = 0, out_pos = 0;
  lzma_ret r = lzma_stream_buffer_decode(&memlimit, 0, NULL, in, &in_pos, in_len, out, &out_pos, out_len);
  if (r != LZMA_OK) return throw_lzma(env, "lzma_stream_buffer_decode", r);
  /* Like unsquashfs: a block is exactly one stream, nothing after it. */
  if (in_pos != in_len) {
    napi_throw_error(env, "LZMA_DATA_ERROR", "lzma_stream_buffer_decode failed: bytes after the end of the .xz stream");
    return NULL;
  }
  return make_number(env, (double)out_pos);
}

napi_value xz_version(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value r;
  napi_create_string_utf8(env, lzma_version_string(), NAPI_AUTO_LENGTH, &r);
  return r;
}
