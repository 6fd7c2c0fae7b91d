/* Row-wise Adagrad applied to a bag table straight from its bag gradients (embedlab's fused
 * table update, embedlab.training.optim.RowWiseAdagrad.bag_step).
 *
 * grad (n_bags x dim, row-major: the bags' output gradients), scale (n_bags; NULL: 1; mean
 * bags' 1/size), ids (bag after bag, lengths[b] ids for bag b), per-token weights (NULL: 1)
 * and keep (NULL: every token; 0: a padding token, no gradient). A token's gradient is
 * g = w * scale[b] * grad_b. As RowWiseAdagrad's sparse step: every occurrence of a row first
 * adds its mean(g^2) to the row's sum, then each occurrence updates the row with that sum:
 * sum[r] += mean(g^2); table[r] -= lr * g / (sqrt(sum[r]) + eps).
 *
 * One thread: the loop is bound by memory (two threads that each owned the rows r % 2, or half
 * of each row, were slower). The rows AHEAD tokens on are prefetched: their order is random,
 * so the hardware cannot guess them (1M-text table: 491 -> 398 us a batch of 8.2k ids, after
 * the forward read them). */
#include <math.h>
#include <stdint.h>

#define AHEAD 16
#if defined(__GNUC__) || defined(__clang__)
#define PREFETCH(address) __builtin_prefetch((address), 1, 3)
#else
#define PREFETCH(address) ((void)0)
#endif

#define BAG_UPDATE(NAME, T, SQRT)                                                           \
  void NAME(int64_t n_bags, int64_t dim, const T *grad, const T *scale, const int64_t *ids, \
            const int64_t *lengths, const T *weights, const uint8_t *keep, T *table,       \
            T *sum, T lr, T eps) {                                                          \
    int64_t n_ids = 0;                                                                      \
    for (int64_t b = 0; b < n_bags; ++b) n_ids += lengths[b];                               \
    int64_t t = 0;                                                                          \
    for (int64_t b = 0; b < n_bags; ++b) {                                                  \
      const T *g = grad + b * dim;                                                          \
      T s = scale ? scale[b] : (T)1, sq = 0;                                                \
      for (int64_t d = 0; d < dim; ++d) sq += g[d] * g[d];                                  \
      sq = s * s * sq / (T)dim; /* the mean square of the bag's gradient */                 \
      for (int64_t i = 0; i < lengths[b]; ++i, ++t) {                                       \
        if (t + AHEAD < n_ids) PREFETCH(sum + ids[t + AHEAD]);                              \
        if (keep && !keep[t]) continue;                                                     \
        T w = weights ? weights[t] : (T)1;                                                  \
        sum[ids[t]] += w * w * sq;                                                          \
      }                                                                                     \
    }                                                                                       \
    t = 0;                                                                                  \
    for (int64_t b = 0; b < n_bags; ++b) {                                                  \
      const T *g = grad + b * dim;                                                          \
      T s = scale ? scale[b] : (T)1;                                                        \
      for (int64_t i = 0; i < lengths[b]; ++i, ++t) {                                       \
        if (t + AHEAD < n_ids) {                                                            \
          const char *next = (const char *)(table + ids[t + AHEAD] * dim);                  \
          for (int64_t at = 0; at < dim * (int64_t)sizeof(T); at += 64)                     \
            PREFETCH(next + at);                                                            \
        }                                                                                   \
        if (keep && !keep[t]) continue;                                                     \
        int64_t r = ids[t];                                                                 \
        T c = -lr / (SQRT(sum[r]) + eps) * s * (weights ? weights[t] : (T)1);               \
        T *row = table + r * dim;                                                           \
        for (int64_t d = 0; d < dim; ++d) row[d] += g[d] * c;                               \
      }                                                                                     \
    }                                                                                       \
  }

BAG_UPDATE(bag_update_f32, float, sqrtf)
BAG_UPDATE(bag_update_f64, double, sqrt)
