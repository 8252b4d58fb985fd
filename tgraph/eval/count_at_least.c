/* counts[b, k] = #{j : scores[b, j] >= thresholds[b, k]} for k < n_thresholds[b], and whether
 * row b holds a non-finite score; the native kernel of tgraph.eval.native.
 *
 * One row at a time (a row of 41k float32 scores is 164 KB and stays in L2 cache while it is
 * read): thresholds are taken four at a time and each sweep over the row adds the four
 * comparisons into four int32 counters, which gcc vectorises (SSE2, or AVX2 where the CPU has
 * it: target_clones picks at load time). The first sweep also ORs the "exponent all ones" test
 * (inf or NaN) over the row. Unused threshold slots hold +inf (their counts are not written).
 * Comparisons are IEEE ">=", as torch.ge: NaN compares false. Counters are int32 within
 * blocks of 2^30 items and summed into int64.
 */
#include <math.h>
#include <stdint.h>

#define BLOCK ((int64_t)1 << 30)

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define CLONES __attribute__((target_clones("avx2", "default")))
#else
#define CLONES
#endif

CLONES static uint32_t sweep(const float *s, int64_t n_items, const float *t, int64_t *out,
                             int check)
{
    const float t0 = t[0], t1 = t[1], t2 = t[2], t3 = t[3];
    const uint32_t *bits = (const uint32_t *)s;
    int64_t c0 = 0, c1 = 0, c2 = 0, c3 = 0;
    uint32_t bad = 0;
    for (int64_t lo = 0; lo < n_items; lo += BLOCK) {
        const int64_t hi = lo + BLOCK < n_items ? lo + BLOCK : n_items;
        int32_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
        if (check) {
            for (int64_t j = lo; j < hi; j++) {
                const float x = s[j];
                a0 += x >= t0;
                a1 += x >= t1;
                a2 += x >= t2;
                a3 += x >= t3;
                bad |= (bits[j] & 0x7f800000u) == 0x7f800000u;
            }
        } else {
            for (int64_t j = lo; j < hi; j++) {
                const float x = s[j];
                a0 += x >= t0;
                a1 += x >= t1;
                a2 += x >= t2;
                a3 += x >= t3;
            }
        }
        c0 += a0;
        c1 += a1;
        c2 += a2;
        c3 += a3;
    }
    out[0] = c0;
    out[1] = c1;
    out[2] = c2;
    out[3] = c3;
    return bad;
}

/* Rows [lo, hi) of scores (row stride `stride`, unit item stride); thresholds [rows, width]
 * contiguous; counts [rows, width] int64, written for k < n_thresholds[b] only. Returns the
 * number of rows in [lo, hi) holding a non-finite score. */
int64_t tgraph_count_at_least(const float *scores, int64_t stride, int64_t n_items,
                              const float *thresholds, const int64_t *n_thresholds,
                              int64_t width, int64_t *counts, int64_t lo, int64_t hi)
{
    int64_t bad_rows = 0;
    for (int64_t b = lo; b < hi; b++) {
        const float *s = scores + b * stride;
        const float *t = thresholds + b * width;
        const int64_t n = n_thresholds[b];
        int64_t *c = counts + b * width;
        uint32_t bad = 0;
        int64_t k = 0;
        do {
            float four[4];
            int64_t found[4];
            for (int i = 0; i < 4; i++)
                four[i] = k + i < n ? t[k + i] : INFINITY;
            bad |= sweep(s, n_items, four, found, k == 0);
            for (int i = 0; i < 4 && k + i < n; i++)
                c[k + i] = found[i];
            k += 4;
        } while (k < n);
        bad_rows += bad != 0;
    }
    return bad_rows;
}
