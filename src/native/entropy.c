/*
 * incompressible(block) -> true when compressing the block would almost surely save nothing, so the writer stores
 * it as it is without running the compressor. Three checks, cheapest first:
 *   - its bytes are spread evenly over all 256 values: order-0 entropy of at least 7.995 bits per byte (deflate and
 *     xz streams measure 7.995-7.999 on 128 KiB; text and code far less; a weak generator's "noise" about 7.99);
 *   - lz4 finds less than 1% to save (short matches within 64 KiB);
 *   - no long stretch repeats at any distance: content-defined samples, 32-byte windows taken where a rolling
 *     (gear) hash of the 64 bytes before them has its top byte clear, about one in 256; a stretch of 100 bytes or
 *     more that repeats puts the same windows in both copies, and two equal windows mean it is compressible.
 * Without liblz4 no block is judged.
 * Blocks under 32 KiB are never judged (too few bytes for the estimate). What this catches is mostly data that is
 * compressed already (.gz, .png, .jpg, .xz members of a tree), on which gzip -9, zstd -15 or xz spend as long as on
 * text for nothing.
 */
#include "native.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MIN_JUDGED 32768
#define WINDOW 32

static uint64_t gear[256];
static bool gear_ready;

/* The gear table: fixed pseudo-random words (splitmix64 from a constant), the same in every process. */
static void make_gear(void) {
  uint64_t x = 0x6d6b706f727461ULL;
  for (int i = 0; i < 256; i++) {
    uint64_t z = (x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    gear[i] = z ^ (z >> 31);
  }
  gear_ready = true;
}

static uint64_t window_hash(const uint8_t *p) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (int i = 0; i < WINDOW; i++) h = (h ^ p[i]) * 0x100000001b3ULL;
  return h;
}

static bool spread_evenly(const uint8_t *b, size_t n) {
  uint32_t hist[256] = {0};
  for (size_t i = 0; i < n; i++) hist[b[i]]++;
  double h = 0;
  for (int k = 0; k < 256; k++) {
    if (!hist[k]) continue;
    double p = (double)hist[k] / (double)n;
    h -= p * log2(p);
  }
  return h >= 7.995;
}

/* Whether two content-defined windows of the block are equal; true also when memory runs out (judge compressible). */
static bool repeats(const uint8_t *b, size_t n) {
  if (!gear_ready) make_gear();
  size_t cap = 64;
  while (cap < 2 * (n / 256 + 16)) cap <<= 1;
  uint64_t *fps = calloc(cap, sizeof *fps);
  uint32_t *pos = calloc(cap, sizeof *pos);
  bool found = fps == NULL || pos == NULL;
  uint64_t h = 0;
  for (size_t i = 0; !found && i + WINDOW <= n; i++) {
    h = (h << 1) + gear[b[i]];
    if (i < 64 || (h >> 56) != 0) continue;
    const uint8_t *w = b + i + 1 - WINDOW;
    uint64_t fp = window_hash(w) | 1;
    for (size_t s = fp & (cap - 1);; s = (s + 1) & (cap - 1)) {
      if (fps[s] == 0) {
        fps[s] = fp;
        pos[s] = (uint32_t)(w - b);
        break;
      }
      if (fps[s] == fp && memcmp(b + pos[s], w, WINDOW) == 0) {
        found = true;
        break;
      }
    }
  }
  free(fps);
  free(pos);
  return found;
}

/* Whether lz4 saves 1% or more; true also when it cannot be tried (judge compressible). */
static bool shrinks_with_lz4(const uint8_t *b, size_t n) {
  size_t cap = n - n / 100;
  uint8_t *dst = malloc(cap);
  if (!dst) return true;
  int r = lz4_trial(b, n, dst, cap);
  free(dst);
  return r != 0;
}

napi_value entropy_incompressible(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  uint8_t *b;
  size_t n;
  if (!get_args(env, info, 1, argv, "incompressible needs (block)") || !get_bytes(env, argv[0], "block", &b, &n)) return NULL;
  bool r = n >= MIN_JUDGED && n <= UINT32_MAX && spread_evenly(b, n) && !shrinks_with_lz4(b, n) && !repeats(b, n);
  napi_value v;
  napi_get_boolean(env, r, &v);
  return v;
}
