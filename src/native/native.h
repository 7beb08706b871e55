/* mkportable's native addon: shared helpers and the functions each part exports. */
#ifndef MKPORTABLE_NATIVE_H
#define MKPORTABLE_NATIVE_H
#define NAPI_VERSION 8
#include <node_api.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Reads a Uint8Array (or Buffer) argument; throws and returns false otherwise. */
bool get_bytes(napi_env env, napi_value v, const char *name, uint8_t **data, size_t *len);
/* The call's first n arguments into argv; throws a TypeError saying `usage` when fewer are given. */
bool get_args(napi_env env, napi_callback_info info, size_t n, napi_value *argv, const char *usage);
bool get_u32(napi_env env, napi_value v, const char *name, uint32_t *out);
bool get_i64(napi_env env, napi_value v, const char *name, int64_t *out);
napi_value make_number(napi_env env, double d);
/* Throws an Error whose code is the errno's name ("ENOENT") and whose message names the call. */
napi_value throw_errno(napi_env env, const char *call, int err);

/* xz.c */
napi_value xz_encode(napi_env env, napi_callback_info info);
napi_value xz_decode(napi_env env, napi_callback_info info);
napi_value xz_version(napi_env env, napi_callback_info info);
napi_value xz_stream_encoder(napi_env env, napi_callback_info info);
napi_value xz_stream_code(napi_env env, napi_callback_info info);

/* fs.c */
/* One extended attribute's value (malloc'ed) into value and size, a size < 0 when it is to be left out (gone, not
 * readable); 0, or the errno of a real failure. No JavaScript: any thread may call it. */
int read_xattr(const char *path, const char *name, char **value, ssize_t *size);
napi_value fs_list_xattrs(napi_env env, napi_callback_info info);
napi_value fs_set_xattr(napi_env env, napi_callback_info info);
napi_value fs_next_data(napi_env env, napi_callback_info info);
napi_value fs_next_hole(napi_env env, napi_callback_info info);
napi_value fs_read_file(napi_env env, napi_callback_info info);
/* path[0, n) NUL-terminated into buf[0, cap): 0, or ENAMETOOLONG, or ENOENT when the bytes hold a NUL. */
int terminated_path(const uint8_t *path, size_t n, char *buf, size_t cap);
/* readFile's read without JavaScript (any thread): the bytes read (up to length + 1), or -errno. */
ssize_t read_small_file(const char *path, uint8_t *dst, size_t length);

/* zlib.c */
napi_value zlib_deflate(napi_env env, napi_callback_info info);
napi_value zlib_library_version(napi_env env, napi_callback_info info);

/* lz4.c */
/* LZ4_compress_default of src into dst[0, cap): the size, 0 when it does not fit, -1 without liblz4. */
int lz4_trial(const uint8_t *src, size_t n, uint8_t *dst, size_t cap);
napi_value lz4_compress(napi_env env, napi_callback_info info);
napi_value lz4_library_version(napi_env env, napi_callback_info info);

/* entropy.c */
napi_value entropy_incompressible(napi_env env, napi_callback_info info);

/* copy.c */
napi_value mem_copy(napi_env env, napi_callback_info info);

/* tasks.c */
napi_value task_pool_available(napi_env env, napi_callback_info info);
napi_value task_pool_create(napi_env env, napi_callback_info info);
napi_value task_pool_run(napi_env env, napi_callback_info info);
napi_value task_pool_close(napi_env env, napi_callback_info info);

/* scan.c */
napi_value fs_scan_async(napi_env env, napi_callback_info info);
#endif
