/* Row-wise Adagrad applied to a bag table straight from its bag gradients (embedlab's fused
 * table update, embedlab.training.optim.RowWiseAdagrad.bag_step), and the bag model's whole
 * training step built on it (embedlab.training.bag_step, bag_train_steps_f32).
 *
 * bag_update: grad (n_bags x dim, row-major: the bags' output gradients), scale (n_bags; NULL:
 * 1; mean bags' 1/size), ids (bag after bag, lengths[b] ids for bag b), per-token weights
 * (NULL: 1) and keep (NULL: every token; 0: a padding token, no gradient). A token's gradient
 * is g = w * scale[b] * grad_b. As RowWiseAdagrad's sparse step: every occurrence of a row
 * first adds its mean(g^2) to the row's sum, then each occurrence updates the row with that
 * sum: sum[r] += mean(g^2); table[r] -= lr * g / (sqrt(sum[r]) + eps).
 *
 * One thread: the loop is bound by memory (two threads that each owned the rows r % 2, or half
 * of each row, were slower). The rows AHEAD tokens on are prefetched: their order is random,
 * so the hardware cannot guess them (1M-text table: 491 -> 398 us a batch of 8.2k ids, after
 * the forward read them). */
#include <math.h>
#include <stdint.h>
#include <string.h>

#define AHEAD 16
#if defined(__GNUC__) || defined(__clang__)
#define PREFETCH(address) __builtin_prefetch((address), 1, 3)
#else
#define PREFETCH(address) ((void)0)
#endif

/* a . b with 8 partial sums: loops the compiler vectorizes (a single sum is a serial chain
 * it may not reorder) */
#define DOT(NAME, T)                                                                        \
  static inline T NAME(const T *restrict a, const T *restrict b, int64_t n) {              \
    T acc[8] = {0}, s = 0;                                                                  \
    int64_t d = 0;                                                                          \
    for (; d + 8 <= n; d += 8)                                                              \
      for (int k = 0; k < 8; ++k) acc[k] += a[d + k] * b[d + k];                            \
    for (; d < n; ++d) s += a[d] * b[d];                                                    \
    for (int k = 0; k < 8; ++k) s += acc[k];                                                \
    return s;                                                                               \
  }

DOT(dot_f32, float)
DOT(dot_f64, double)

/* The update loop, skipping padding tokens: keep[t] == 0 where keep is given, else
 * ids[t] == pad (pad < 0: none). */
#define ROWS_UPDATE(NAME, DOTP, T, SQRT)                                                    \
  static void NAME(int64_t n_bags, int64_t dim, const T *grad, const T *scale,              \
                   const int64_t *ids, const int64_t *lengths, const T *weights,            \
                   const uint8_t *keep, int64_t pad, T *table, T *sum, T lr, T eps) {       \
    int64_t n_ids = 0;                                                                      \
    for (int64_t b = 0; b < n_bags; ++b) n_ids += lengths[b];                               \
    int64_t t = 0;                                                                          \
    for (int64_t b = 0; b < n_bags; ++b) {                                                  \
      const T *g = grad + b * dim;                                                          \
      T s = scale ? scale[b] : (T)1;                                                        \
      T sq = s * s * DOTP(g, g, dim) / (T)dim; /* the mean square of the bag's gradient */  \
      for (int64_t i = 0; i < lengths[b]; ++i, ++t) {                                       \
        if (t + AHEAD < n_ids) PREFETCH(sum + ids[t + AHEAD]);                              \
        if (keep ? !keep[t] : ids[t] == pad) continue;                                      \
        T w = weights ? weights[t] : (T)1;                                                  \
        sum[ids[t]] += w * w * sq;                                                          \
      }                                                                                     \
    }                                                                                       \
    t = 0;                                                                                  \
    for (int64_t b = 0; b < n_bags; ++b) {                                                  \
      const T *restrict g = grad + b * dim;                                                 \
      T s = scale ? scale[b] : (T)1;                                                        \
      for (int64_t i = 0; i < lengths[b]; ++i, ++t) {                                       \
        if (t + AHEAD < n_ids) {                                                            \
          const char *next = (const char *)(table + ids[t + AHEAD] * dim);                  \
          for (int64_t at = 0; at < dim * (int64_t)sizeof(T); at += 64)                     \
            PREFETCH(next + at);                                                            \
        }                                                                                   \
        if (keep ? !keep[t] : ids[t] == pad) continue;                                      \
        int64_t r = ids[t];                                                                 \
        T c = -lr / (SQRT(sum[r]) + eps) * s * (weights ? weights[t] : (T)1);               \
        T *restrict row = table + r * dim;                                                  \
        for (int64_t d = 0; d < dim; ++d) row[d] += g[d] * c;                               \
      }                                                                                     \
    }                                                                                       \
  }

ROWS_UPDATE(rows_update_f32, dot_f32, float, sqrtf)
ROWS_UPDATE(rows_update_f64, dot_f64, double, sqrt)

void bag_update_f32(int64_t n_bags, int64_t dim, const float *grad, const float *scale,
                    const int64_t *ids, const int64_t *lengths, const float *weights,
                    const uint8_t *keep, float *table, float *sum, float lr, float eps) {
  rows_update_f32(n_bags, dim, grad, scale, ids, lengths, weights, keep, -1, table, sum, lr, eps);
}

void bag_update_f64(int64_t n_bags, int64_t dim, const double *grad, const double *scale,
                    const int64_t *ids, const int64_t *lengths, const double *weights,
                    const uint8_t *keep, double *table, double *sum, double lr, double eps) {
  rows_update_f64(n_bags, dim, grad, scale, ids, lengths, weights, keep, -1, table, sum, lr, eps);
}

/* One training step of BagOfEmbeddings with a linear head (model=boe, no hidden layers),
 * train_batch, after check_batch accepted the batch:
 * the forward, the cross-entropy, the backward and the table's row-wise Adagrad update, as
 * autograd and RowWiseAdagrad.bag_step make them from the nn.Module:
 *
 *   pooled_b = scale_b * sum_t w_t table[ids_t]      (scale_b = 1/#non-padding ids, mean bags)
 *   x_b = pooled_b * (uniform_b >= p) * keep_scale   (dropout; uniform NULL: none)
 *   logits_b = W x_b + bias
 *   loss = mean_b [(1 - s) * -log softmax(logits_b)[y_b] + s * mean_c -log softmax_c]
 *   (s: label smoothing)
 *
 * train_batch writes loss (mean), preds (argmax, first maximum), lengths (tokens per bag),
 * n_pad (how many ids are padding), scale (NULL for sum bags), grad_pooled (the loss's
 * gradient w.r.t. pooled: BagGradient.grad), grad_W and grad_bias (NULL where there is no
 * bias), and updates table and its row sums; pooled and logits are scratch (n_bags x dim,
 * n_bags x n_classes). check_batch returns 0, or 1 offsets out of order or past the ids, 2 an
 * id out of the table, 3 a label out of range: the caller then takes autograd's path, which
 * reports it. */
static int check_batch(int64_t n_bags, int64_t n_classes, int64_t n_ids, int64_t n_rows,
                       const int64_t *ids, const int64_t *offsets, const int64_t *labels) {
  for (int64_t b = 0; b < n_bags; ++b) {
    int64_t end = b + 1 < n_bags ? offsets[b + 1] : n_ids;
    if (offsets[b] < 0 || end < offsets[b] || end > n_ids || (b == 0 && offsets[0] != 0))
      return 1;
    if (labels[b] < 0 || labels[b] >= n_classes) return 3;
  }
  for (int64_t t = 0; t < n_ids; ++t)
    if (ids[t] < 0 || ids[t] >= n_rows) return 2;
  return 0;
}

static void train_batch(int64_t n_bags, int64_t dim, int64_t n_classes, int64_t n_ids,
                        const int64_t *ids, const int64_t *offsets, const float *weights,
                        int64_t pad, int mean, float *table, float *sum, float lr, float eps,
                        const float *uniform, float p, float keep_scale, const float *W,
                        const float *bias, const int64_t *labels, float smoothing,
                        float *pooled, float *logits, int64_t *lengths, int64_t *n_pad,
                        float *scale, float *grad_pooled, float *grad_W, float *grad_bias,
                        int64_t *preds, float *loss) {
  *n_pad = 0;
  /* forward: the bags, dropout, logits */
  for (int64_t b = 0; b < n_bags; ++b) {
    int64_t start = offsets[b], end = b + 1 < n_bags ? offsets[b + 1] : n_ids, size = 0;
    float *restrict x = pooled + b * dim;
    memset(x, 0, (size_t)dim * sizeof(float));
    for (int64_t t = start; t < end; ++t) {
      if (t + AHEAD < n_ids) { /* the update writes these rows too */
        const char *next = (const char *)(table + ids[t + AHEAD] * dim);
        for (int64_t at = 0; at < dim * (int64_t)sizeof(float); at += 64) PREFETCH(next + at);
      }
      if (ids[t] == pad) {
        ++*n_pad;
        continue;
      }
      const float *restrict row = table + ids[t] * dim;
      float w = weights ? weights[t] : 1.0f;
      if (weights)
        for (int64_t d = 0; d < dim; ++d) x[d] += w * row[d];
      else
        for (int64_t d = 0; d < dim; ++d) x[d] += row[d];
      ++size;
    }
    lengths[b] = end - start;
    if (mean) {
      scale[b] = 1.0f / (float)(size > 0 ? size : 1);
      for (int64_t d = 0; d < dim; ++d) x[d] *= scale[b];
    }
    if (uniform) {
      const float *restrict u = uniform + b * dim;
      for (int64_t d = 0; d < dim; ++d) x[d] *= u[d] >= p ? keep_scale : 0.0f;
    }
  }
  double total = 0;
  for (int64_t b = 0; b < n_bags; ++b) {
    const float *x = pooled + b * dim;
    float *z = logits + b * n_classes, top = -INFINITY;
    int64_t best = 0;
    for (int64_t c = 0; c < n_classes; ++c) {
      z[c] = dot_f32(W + c * dim, x, dim) + (bias ? bias[c] : 0.0f);
      if (z[c] > top) top = z[c], best = c;
    }
    preds[b] = best;
    /* float32 and in the order of torch's log_softmax, nll_loss and their backward: on a
     * confidently right text, exp(log p_y) rounds to 1 and its gradient to 0 there, as with
     * autograd (a more exact gradient, though as small, moved a row that row-wise Adagrad
     * sees for the first time by a full step in another direction) */
    float norm = 0, logps = 0;
    for (int64_t c = 0; c < n_classes; ++c) norm += expf(z[c] - top);
    float log_norm = logf(norm); /* log p_c = (z_c - top) - log_norm, as torch rounds it */
    for (int64_t c = 0; c < n_classes; ++c) logps += (z[c] - top) - log_norm;
    float logp_y = (z[labels[b]] - top) - log_norm;
    total += -(1.0f - smoothing) * logp_y - smoothing / n_classes * logps;
    /* dloss/dlogits: g - exp(log p) * sum(g), g = dloss/dlog p (the batch mean's 1/n_bags) */
    float off = -(smoothing / n_classes) / n_bags, on = off - (1.0f - smoothing) / n_bags;
    float sum_g = on + off * (n_classes - 1);
    for (int64_t c = 0; c < n_classes; ++c)
      z[c] = (c == labels[b] ? on : off) - expf((z[c] - top) - log_norm) * sum_g;
  }
  *loss = (float)(total / n_bags);
  /* backward: the head's gradients, the pooled bags' gradient */
  memset(grad_W, 0, (size_t)(n_classes * dim) * sizeof(float));
  if (grad_bias) memset(grad_bias, 0, (size_t)n_classes * sizeof(float));
  for (int64_t b = 0; b < n_bags; ++b) {
    const float *restrict x = pooled + b * dim, *z = logits + b * n_classes;
    float *restrict g = grad_pooled + b * dim;
    memset(g, 0, (size_t)dim * sizeof(float));
    for (int64_t c = 0; c < n_classes; ++c) {
      const float *restrict w = W + c * dim;
      float *restrict gw = grad_W + c * dim, zc = z[c];
      for (int64_t d = 0; d < dim; ++d) {
        gw[d] += zc * x[d];
        g[d] += zc * w[d];
      }
      if (grad_bias) grad_bias[c] += zc;
    }
    if (uniform) {
      const float *restrict u = uniform + b * dim;
      for (int64_t d = 0; d < dim; ++d) g[d] *= u[d] >= p ? keep_scale : 0.0f;
    }
  }
  rows_update_f32(n_bags, dim, grad_pooled, mean ? scale : NULL, ids, lengths, weights, NULL,
                  pad, table, sum, lr, eps);
}

/* The training log's tallies, where given (bag_train_steps_f32's comment) */
static void tally(int64_t n_bags, int64_t n_classes, const int64_t *labels, const int64_t *preds,
                  float loss, int64_t *confusion, double *totals) {
  if (confusion)
    for (int64_t b = 0; b < n_bags; ++b) ++confusion[labels[b] * n_classes + preds[b]];
  if (totals) {
    totals[0] += (double)loss * (double)n_bags;
    totals[1] += (double)n_bags;
  }
}

/* torch.optim.Adagrad's update of one dense parameter (n values) from its gradient g:
 * step += 1; clr = lr / (1 + (step - 1) * lr_decay); g += weight_decay * p;
 * sum += g^2; p -= clr * g / (sqrt(sum) + eps). */
static void adagrad_f32(int64_t n, float *param, const float *grad, float *sum, float *step,
                        double lr, double lr_decay, float eps, float weight_decay) {
  *step += 1.0f;
  float clr = (float)(lr / (1.0 + ((double)*step - 1.0) * lr_decay));
  for (int64_t i = 0; i < n; ++i) {
    float g = grad[i] + weight_decay * param[i];
    sum[i] += g * g;
    param[i] -= clr * g / (sqrtf(sum[i]) + eps);
  }
}

/* check_batch of each of n_batches batches (bag_train_steps_f32's layout): 0, or the first
 * bad batch's code. Its own entry point, so a caller can check before it draws dropout. */
int check_batches(int64_t n_batches, const int64_t *batches, int64_t n_classes,
                  int64_t n_rows) {
  for (int64_t k = 0; k < n_batches; ++k) {
    const int64_t *batch = batches + 6 * k;
    int status = check_batch(batch[5], n_classes, batch[4], n_rows,
                             (const int64_t *)(intptr_t)batch[0],
                             (const int64_t *)(intptr_t)batch[1],
                             (const int64_t *)(intptr_t)batch[2]);
    if (status) return status;
  }
  return 0;
}

/* n_batches training steps in one call, each train_batch then adagrad_f32 on W and on bias
 * (embedlab.training.bag_step.FusedBagStep: one call a Lightning step, or one a batch), without
 * a trip through Python per batch (~150 us of a ~300 us MPQA update). batches[k] = {ids, offsets, labels,
 * weights (0: none)} as addresses, n_ids, n_bags: batch k. uniform: the dropout draws of all
 * bags, batch after batch (NULL: none). head = {lr, lr_decay, eps, weight_decay} of W, then
 * of bias; W_sum/W_step, bias_sum/bias_step: their Adagrad state. losses (n_batches) and
 * preds (all bags) are written; the rest is scratch for the largest batch. Where given, the
 * training log's tallies are added to: confusion[label * n_classes + pred] += 1 a text, and
 * totals[0] += the batch's mean loss * its texts, totals[1] += its texts (the sums a task's
 * record_train makes with a bincount and a dot product: ~1 ms of torch ops a Lightning step,
 * measured inside a run). The last batch's bag gradients stay in the scratch (lengths, scale,
 * grad_pooled; last_n_pad: its padding ids). Where a batch is bad (check_batches' code),
 * nothing is written. */
int bag_train_steps_f32(int64_t n_batches, const int64_t *batches, int64_t dim,
                        int64_t n_classes, int64_t n_rows, int64_t pad, int mean, float *table,
                        float *sum, float lr, float eps, const float *uniform, float p,
                        float keep_scale, float *W, float *bias, const double *head,
                        float *W_sum, float *W_step, float *bias_sum, float *bias_step,
                        float smoothing, float *pooled, float *logits, int64_t *lengths,
                        float *scale, float *grad_pooled, float *grad_W, float *grad_bias,
                        float *losses, int64_t *preds, int64_t *confusion, double *totals,
                        int64_t *last_n_pad) {
  int status = check_batches(n_batches, batches, n_classes, n_rows);
  if (status) return status;
  int64_t n_pad = 0, done = 0;
  for (int64_t k = 0; k < n_batches; ++k) {
    const int64_t *batch = batches + 6 * k;
    int64_t n_bags = batch[5];
    train_batch(n_bags, dim, n_classes, batch[4], (const int64_t *)(intptr_t)batch[0],
                (const int64_t *)(intptr_t)batch[1], (const float *)(intptr_t)batch[3], pad,
                mean, table, sum, lr, eps, uniform ? uniform + done * dim : NULL, p, keep_scale,
                W, bias, (const int64_t *)(intptr_t)batch[2], smoothing, pooled, logits,
                lengths, &n_pad, scale, grad_pooled, grad_W, grad_bias, preds + done,
                losses + k);
    adagrad_f32(n_classes * dim, W, grad_W, W_sum, W_step, head[0], head[1], (float)head[2],
                (float)head[3]);
    if (bias)
      adagrad_f32(n_classes, bias, grad_bias, bias_sum, bias_step, head[4], head[5],
                  (float)head[6], (float)head[7]);
    tally(n_bags, n_classes, (const int64_t *)(intptr_t)batch[2], preds + done, losses[k],
          confusion, totals);
    done += n_bags;
  }
  if (last_n_pad) *last_n_pad = n_pad;
  return 0;
}

/* The texts of a batch gathered from a CSR split: the lengths[i] ids from src + starts[i],
 * text after text, into dst (embedlab.data.batching.gather_bags). One memcpy a text instead of
 * torch's four passes over the batch's ids (repeat_interleave, arange, add, index): 8192 MR
 * texts (297k ids) in 0.37 ms instead of 1.44. Returns 1, having written nothing, where a
 * text reaches outside src's n_src ids. */
int gather_segments_i64(int64_t n, const int64_t *starts, const int64_t *lengths, int64_t n_src,
                        const int64_t *src, int64_t *dst) {
  for (int64_t i = 0; i < n; ++i)
    if (starts[i] < 0 || lengths[i] < 0 || starts[i] > n_src - lengths[i]) return 1;
  for (int64_t i = 0; i < n; ++i) {
    memcpy(dst, src + starts[i], (size_t)lengths[i] * sizeof(int64_t));
    dst += lengths[i];
  }
  return 0;
}
