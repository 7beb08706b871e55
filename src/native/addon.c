/*
 * mkportable's native addon: the few things Node cannot do itself.
 *
 *   encode, decode, version        xz blocks through the system liblzma (xz.c)
 *   listXattrs, setXattr           extended attributes by byte-exact path, symlinks not followed (fs.c)
 *   nextData, nextHole             lseek SEEK_DATA / SEEK_HOLE, to skip the holes of sparse files (fs.c)
 *   readFile                       a small file opened, read and closed in one call, for the writer's workers (fs.c)
 *   deflate, zlibVersion           gzip blocks through libdeflate, the system zlib (as mksquashfs makes them) or Node's (zlib.c)
 *   scanAsync                      a folder listed, lstat'ed and sorted in one call, for planning big trees (scan.c)
 *   lz4Compress, lz4Version        lz4 blocks through the system liblz4, the library mksquashfs uses (lz4.c)
 *   copy                           memmove between byte arrays, shared memory included (copy.c)
 *   incompressible                 whether a block is not worth compressing (evenly spread bytes, no repeats; entropy.c)
 *   taskPool*                      the writer's data path for plain lz4 in native threads (tasks.c)
 *
 * Everything but the task pool is synchronous: xz and zlib run in mkportable's own worker threads, and the file-system calls are a
 * few system calls each. No global state but per-thread deflate streams (napi instance data), so it loads in any
 * number of worker threads (NAPI_MODULE_INIT is context-aware).
 * Built by node-gyp when npm installs mkportable.
 */
#define _GNU_SOURCE
#include "native.h"
#include <errno.h>
#include <stdio.h>
#include <string.h>

bool get_bytes(napi_env env, napi_value v, const char *name, uint8_t **data, size_t *len) {
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

bool get_u32(napi_env env, napi_value v, const char *name, uint32_t *out) {
  if (napi_get_value_uint32(env, v, out) != napi_ok) {
    char msg[64];
    snprintf(msg, sizeof msg, "%s must be a number", name);
    napi_throw_type_error(env, NULL, msg);
    return false;
  }
  return true;
}

bool get_i64(napi_env env, napi_value v, const char *name, int64_t *out) {
  if (napi_get_value_int64(env, v, out) != napi_ok) {
    char msg[64];
    snprintf(msg, sizeof msg, "%s must be a number", name);
    napi_throw_type_error(env, NULL, msg);
    return false;
  }
  return true;
}

bool get_args(napi_env env, napi_callback_info info, size_t n, napi_value *argv, const char *usage) {
  size_t argc = n;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc >= n) return true;
  napi_throw_type_error(env, NULL, usage);
  return false;
}

napi_value make_number(napi_env env, double d) {
  napi_value r;
  napi_create_double(env, d, &r);
  return r;
}

napi_value throw_errno(napi_env env, const char *call, int err) {
  const char *name = strerrorname_np(err);
  char msg[256];
  snprintf(msg, sizeof msg, "%s: %s", call, strerror(err));
  napi_throw_error(env, name ? name : "EIO", msg);
  return NULL;
}

NAPI_MODULE_INIT() {
  napi_property_descriptor props[] = {
    {"encode", NULL, xz_encode, NULL, NULL, NULL, napi_enumerable, NULL},
    {"decode", NULL, xz_decode, NULL, NULL, NULL, napi_enumerable, NULL},
    {"version", NULL, xz_version, NULL, NULL, NULL, napi_enumerable, NULL},
    {"xzStreamEncoder", NULL, xz_stream_encoder, NULL, NULL, NULL, napi_enumerable, NULL},
    {"xzStreamCode", NULL, xz_stream_code, NULL, NULL, NULL, napi_enumerable, NULL},
    {"listXattrs", NULL, fs_list_xattrs, NULL, NULL, NULL, napi_enumerable, NULL},
    {"setXattr", NULL, fs_set_xattr, NULL, NULL, NULL, napi_enumerable, NULL},
    {"nextData", NULL, fs_next_data, NULL, NULL, NULL, napi_enumerable, NULL},
    {"nextHole", NULL, fs_next_hole, NULL, NULL, NULL, napi_enumerable, NULL},
    {"readFile", NULL, fs_read_file, NULL, NULL, NULL, napi_enumerable, NULL},
    {"deflate", NULL, zlib_deflate, NULL, NULL, NULL, napi_enumerable, NULL},
    {"zlibVersion", NULL, zlib_library_version, NULL, NULL, NULL, napi_enumerable, NULL},
    {"scanAsync", NULL, fs_scan_async, NULL, NULL, NULL, napi_enumerable, NULL},
    {"lz4Compress", NULL, lz4_compress, NULL, NULL, NULL, napi_enumerable, NULL},
    {"lz4Version", NULL, lz4_library_version, NULL, NULL, NULL, napi_enumerable, NULL},
    {"copy", NULL, mem_copy, NULL, NULL, NULL, napi_enumerable, NULL},
    {"incompressible", NULL, entropy_incompressible, NULL, NULL, NULL, napi_enumerable, NULL},
    {"taskPoolAvailable", NULL, task_pool_available, NULL, NULL, NULL, napi_enumerable, NULL},
    {"taskPoolCreate", NULL, task_pool_create, NULL, NULL, NULL, napi_enumerable, NULL},
    {"taskPoolRun", NULL, task_pool_run, NULL, NULL, NULL, napi_enumerable, NULL},
    {"taskPoolClose", NULL, task_pool_close, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}
