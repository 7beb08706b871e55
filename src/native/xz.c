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
 *   streamEncoder(dictSize)                  -> an encoder for a whole file of any size (publish), fed in pieces:
 *   streamCode(encoder, input | null, out)   -> [bytes of input taken, bytes written to out, 1 once the stream ended];
 *                                               null input finishes the stream. Memory stays liblzma's own.
 */
#include "native.h"
#include <lzma.h>
#include <stdio.h>
#include <stdlib.h>

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

/* The streaming encoder: an lzma_stream owned by a JavaScript object, ended by the garbage collector at the latest. */
static void stream_finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  lzma_stream *strm = data;
  lzma_end(strm);
  free(strm);
}

napi_value xz_stream_encoder(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (!get_args(env, info, 1, argv, "streamEncoder(dictSize) needs 1 argument")) return NULL;
  uint32_t dict;
  if (!get_u32(env, argv[0], "dictSize", &dict)) return NULL;
  lzma_options_lzma opt;
  if (lzma_lzma_preset(&opt, XZ_PRESET)) return throw_lzma(env, "lzma_lzma_preset", LZMA_OPTIONS_ERROR);
  opt.dict_size = dict;
  lzma_filter filters[2] = {{LZMA_FILTER_LZMA2, &opt}, {LZMA_VLI_UNKNOWN, NULL}};
  lzma_stream *strm = calloc(1, sizeof *strm);
  if (!strm) return throw_lzma(env, "calloc", LZMA_MEM_ERROR);
  *strm = (lzma_stream)LZMA_STREAM_INIT;
  lzma_ret r = lzma_stream_encoder(strm, filters, LZMA_CHECK_CRC32);
  if (r != LZMA_OK) {
    free(strm);
    return throw_lzma(env, "lzma_stream_encoder", r);
  }
  napi_value handle;
  if (napi_create_external(env, strm, stream_finalize, NULL, &handle) != napi_ok) {
    lzma_end(strm);
    free(strm);
    return NULL;
  }
  return handle;
}

napi_value xz_stream_code(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  if (!get_args(env, info, 3, argv, "streamCode(encoder, input, out) needs 3 arguments")) return NULL;
  lzma_stream *strm;
  if (napi_get_value_external(env, argv[0], (void **)&strm) != napi_ok) {
    napi_throw_type_error(env, NULL, "encoder must come from streamEncoder()");
    return NULL;
  }
  napi_valuetype t;
  napi_typeof(env, argv[1], &t);
  bool finish = t == napi_null;
  uint8_t *in = NULL, *out;
  size_t in_len = 0, out_len;
  if ((!finish && !get_bytes(env, argv[1], "input", &in, &in_len)) || !get_bytes(env, argv[2], "out", &out, &out_len)) return NULL;
  strm->next_in = in;
  strm->avail_in = in_len;
  strm->next_out = out;
  strm->avail_out = out_len;
  if (!strm->internal) {
    napi_throw_error(env, NULL, "streamCode: the stream has ended");
    return NULL;
  }
  lzma_ret r = lzma_code(strm, finish ? LZMA_FINISH : LZMA_RUN);
  /* The encoder's memory (~90 MiB at preset 6) goes back as soon as the stream is done with, not at the next GC. */
  if (r != LZMA_OK) lzma_end(strm);
  if (r != LZMA_OK && r != LZMA_STREAM_END) return throw_lzma(env, "lzma_code", r);
  napi_value result, v;
  napi_create_array_with_length(env, 3, &result);
  napi_set_element(env, result, 0, make_number(env, (double)(in_len - strm->avail_in)));
  napi_set_element(env, result, 1, make_number(env, (double)(out_len - strm->avail_out)));
  napi_get_boolean(env, r == LZMA_STREAM_END, &v);
  napi_set_element(env, result, 2, v);
  return result;
}
