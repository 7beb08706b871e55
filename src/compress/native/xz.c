/*
 * mkportable's binding to the system liblzma. Two synchronous one-call functions, the same liblzma calls mksquashfs
 * makes (lzma_stream_buffer_encode / lzma_stream_buffer_decode), so a block costs what it costs in mksquashfs and
 * decoding can never write past the caller's buffer. Synchronous on purpose: mkportable calls it from its own
 * worker threads. No global state, so it loads in any number of worker threads (NAPI_MODULE_INIT is context-aware).
 * Built by node-gyp when npm installs mkportable; needs lzma.h (Debian: liblzma-dev) and links the system liblzma.
 *
 *   encode(input, bcjFilterId, dictSize, out) -> bytes written to out, or -1 when the stream does not fit in out
 *   decode(input, out)                       -> bytes written to out; throws when corrupt or when out is too small
 *   version()                                -> liblzma's version string
 */
#define NAPI_VERSION 8
#include <node_api.h>
#include <lzma.h>
#include <stdbool.h>
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

/* Reads a Uint8Array (or Buffer) argument; throws and returns false otherwise. */
static bool get_bytes(napi_env env, napi_value v, const char *name, uint8_t **data, size_t *len) {
  bool is = false;
  napi_typedarray_type type;
  void *ptr = NULL;
  if (napi_is_typedarray(env, v, &is) != napi_ok || !is ||
      napi_get_typedarray_info(env, v, &type, len, &ptr, NULL, NULL) != napi_ok || type != napi_uint8_array) {
    char msg[64];
    snprintf(msg, sizeof msg, "%s must be a Uint8Array", name);
    napi_throw_type_error(env, NULL, msg);
    return false;
  }
  *data = ptr;
  return true;
}

static bool get_u32(napi_env env, napi_value v, const char *name, uint32_t *out) {
  if (napi_get_value_uint32(env, v, out) != napi_ok) {
    char msg[64];
    snprintf(msg, sizeof msg, "%s must be a number", name);
    napi_throw_type_error(env, NULL, msg);
    return false;
  }
  return true;
}

static napi_value make_number(napi_env env, double d) {
  napi_value r;
  napi_create_double(env, d, &r);
  return r;
}

static napi_value Encode(napi_env env, napi_callback_info info) {
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

static napi_value Decode(napi_env env, napi_callback_info info) {
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

static napi_value Version(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value r;
  napi_create_string_utf8(env, lzma_version_string(), NAPI_AUTO_LENGTH, &r);
  return r;
}

NAPI_MODULE_INIT() {
  napi_property_descriptor props[] = {
    {"encode", NULL, Encode, NULL, NULL, NULL, napi_enumerable, NULL},
    {"decode", NULL, Decode, NULL, NULL, NULL, napi_enumerable, NULL},
    {"version", NULL, Version, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}
