/* minivae's fused kernels: the loops of minivae/kernels/reference.py, one pass each.
 *
 * Each kernel is written once, below the "generic body" line, in terms of a type `real` and
 * the math functions EXP, LOG1P, ... .  This file includes itself twice to stamp out the
 * float32 (`_f32`: float, expf, log1pf, tanhf, ...) and float64 (`_f64`: double, exp, ...)
 * versions, so float32 data is computed in float32 and nothing is upcast.
 *
 * Built with -O3 -march=native -fno-math-errno -fno-trapping-math -fopenmp-simd (see
 * csrc/README.md): no -ffast-math, so NaN and infinities keep their IEEE meaning and a NaN
 * input reaches the outputs it touches.  `#pragma omp simd` marks the loops that may be
 * vectorized, with `reduction(...)` where a sum may be reassociated across vector lanes.
 */
#ifndef MINIVAE_KERNEL_BODY

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "kernels.h"

#if defined(MINIVAE_USE_LIBMVEC) && defined(__GNUC__) && !defined(__clang__)
/* glibc's libmvec has vector versions of these (4, 8 or 16 lanes at once; glibc >= 2.35 for
 * log1p, expm1, tanh).  math.h announces them only under -ffast-math; announcing them here
 * lets the loops below call them without giving up IEEE semantics elsewhere.  The build
 * defines MINIVAE_USE_LIBMVEC only where it also links libmvec. */
#define VECTOR_VARIANT __attribute__((simd("notinbranch")))
VECTOR_VARIANT float expf(float);
VECTOR_VARIANT float log1pf(float);
VECTOR_VARIANT float expm1f(float);
VECTOR_VARIANT float tanhf(float);
VECTOR_VARIANT double exp(double);
VECTOR_VARIANT double log1p(double);
VECTOR_VARIANT double expm1(double);
VECTOR_VARIANT double tanh(double);
#endif

#define MINIVAE_KERNEL_BODY

#define real float
#define KERNEL(name) name##_f32
#define EXP expf
#define EXPM1 expm1f
#define LOG logf
#define LOG1P log1pf
#define TANH tanhf
#define SQRT sqrtf
#define FABS fabsf
#include "kernels.c"
#undef real
#undef KERNEL
#undef EXP
#undef EXPM1
#undef LOG
#undef LOG1P
#undef TANH
#undef SQRT
#undef FABS

#define real double
#define KERNEL(name) name##_f64
#define EXP exp
#define EXPM1 expm1
#define LOG log
#define LOG1P log1p
#define TANH tanh
#define SQRT sqrt
#define FABS fabs
#include "kernels.c"

#else /* ---------------- generic body: included once per floating-point type ---------------- */

/* softplus(l) = log(1 + e^l) = max(l, 0) + log1p(e^-|l|): the exponent is never positive, so
 * nothing overflows for any finite l.  `a` must be e^-|l|. */
static inline real KERNEL(softplus_given_a)(real l, real a)
{
    /* l > 0 ? l : 0 rather than fmax: a NaN l still gives NaN through log1p(a) */
    return (l > 0 ? l : (real)0) + LOG1P(a);
}

/* sigmoid(l) = 1 / (1 + e^-l) for l >= 0 and e^l / (1 + e^l) for l < 0: both only divide by a
 * number in [1, 2].  `a` must be e^-|l|. */
static inline real KERNEL(sigmoid_given_a)(real l, real a)
{
    real inverse = (real)1 / ((real)1 + a);
    return l >= 0 ? inverse : a * inverse;
}

void KERNEL(bernoulli_log_prob)(const real *logits, const real *x, int64_t rows, int64_t cols,
                                int64_t x_rows, real *row_sums, real *grad_logits)
{
    for (int64_t i = 0; i < rows; i++) {
        const real *restrict l = logits + i * cols;
        const real *restrict xi = x + (i % x_rows) * cols;
        real sum = 0;
        if (grad_logits != NULL) {
            real *restrict g = grad_logits + i * cols;
#pragma omp simd reduction(+ : sum)
            for (int64_t j = 0; j < cols; j++) {
                real a = EXP(-FABS(l[j]));
                sum += xi[j] * l[j] - KERNEL(softplus_given_a)(l[j], a);
                g[j] = xi[j] - KERNEL(sigmoid_given_a)(l[j], a);
            }
        } else {
#pragma omp simd reduction(+ : sum)
            for (int64_t j = 0; j < cols; j++) {
                real a = EXP(-FABS(l[j]));
                sum += xi[j] * l[j] - KERNEL(softplus_given_a)(l[j], a);
            }
        }
        row_sums[i] = sum;
    }
}

/* One loop per activation, so the switch stays outside the loop that is vectorized.
 * h and out may be the same array, so they carry no `restrict`. */
void KERNEL(bias_act_forward)(const real *h, const real *bias, int64_t rows, int64_t cols,
                              int activation, real slope, real *out)
{
    for (int64_t i = 0; i < rows; i++) {
        const real *hi = h + i * cols;
        real *yi = out + i * cols;
        switch (activation) {
        case MINIVAE_IDENTITY:
#pragma omp simd
            for (int64_t j = 0; j < cols; j++)
                yi[j] = hi[j] + bias[j];
            break;
        case MINIVAE_RELU:
            /* pre * [pre > 0] as in the reference: NaN stays NaN (a select would give 0) */
#pragma omp simd
            for (int64_t j = 0; j < cols; j++) {
                real pre = hi[j] + bias[j];
                yi[j] = pre * (real)(pre > 0);
            }
            break;
        case MINIVAE_LEAKY_RELU:
#pragma omp simd
            for (int64_t j = 0; j < cols; j++) {
                real pre = hi[j] + bias[j];
                yi[j] = pre * (pre > 0 ? (real)1 : slope);
            }
            break;
        case MINIVAE_TANH:
#pragma omp simd
            for (int64_t j = 0; j < cols; j++)
                yi[j] = TANH(hi[j] + bias[j]);
            break;
        case MINIVAE_SIGMOID:
#pragma omp simd
            for (int64_t j = 0; j < cols; j++) {
                real pre = hi[j] + bias[j];
                yi[j] = KERNEL(sigmoid_given_a)(pre, EXP(-FABS(pre)));
            }
            break;
        case MINIVAE_SOFTPLUS:
#pragma omp simd
            for (int64_t j = 0; j < cols; j++) {
                real pre = hi[j] + bias[j];
                yi[j] = KERNEL(softplus_given_a)(pre, EXP(-FABS(pre)));
            }
            break;
        default:
            return; /* unreachable: minivae.kernels maps the activation name to a code */
        }
    }
}

/* act'(pre) from y = act(pre): see reference.bias_act_backward.  Rows run
 * outermost so grad_bias accumulates one row at a time, as NumPy's sum(axis=0) does. */
void KERNEL(bias_act_backward)(const real *y, const real *grad_y, int64_t rows, int64_t cols,
                               int activation, real slope, real *grad_h, real *grad_bias)
{
    for (int64_t j = 0; j < cols; j++)
        grad_bias[j] = 0;
    for (int64_t i = 0; i < rows; i++) {
        const real *restrict yi = y + i * cols;
        const real *restrict gyi = grad_y + i * cols;
        real *restrict ghi = grad_h + i * cols;
        switch (activation) {
        case MINIVAE_IDENTITY:
#pragma omp simd
            for (int64_t j = 0; j < cols; j++)
                ghi[j] = gyi[j];
            break;
        case MINIVAE_RELU:
#pragma omp simd
            for (int64_t j = 0; j < cols; j++)
                ghi[j] = gyi[j] * (real)(yi[j] > 0);
            break;
        case MINIVAE_LEAKY_RELU:
#pragma omp simd
            for (int64_t j = 0; j < cols; j++)
                ghi[j] = gyi[j] * (yi[j] > 0 ? (real)1 : slope);
            break;
        case MINIVAE_TANH:
#pragma omp simd
            for (int64_t j = 0; j < cols; j++)
                ghi[j] = gyi[j] * ((real)1 - yi[j] * yi[j]);
            break;
        case MINIVAE_SIGMOID:
#pragma omp simd
            for (int64_t j = 0; j < cols; j++)
                ghi[j] = gyi[j] * (yi[j] * ((real)1 - yi[j]));
            break;
        case MINIVAE_SOFTPLUS:
            /* sigma(pre) = 1 - e^-y, without cancellation for small y */
#pragma omp simd
            for (int64_t j = 0; j < cols; j++)
                ghi[j] = gyi[j] * -EXPM1(-yi[j]);
            break;
        default:
            return;
        }
        real *restrict gb = grad_bias;
#pragma omp simd
        for (int64_t j = 0; j < cols; j++)
            gb[j] += ghi[j];
    }
}

void KERNEL(reparameterize_kl_forward)(const real *loc, const real *log_var, const real *eps,
                                       int64_t rows, int64_t cols,
                                       real *z, real *kl, real *std)
{
    for (int64_t i = 0; i < rows; i++) {
        const real *restrict mu = loc + i * cols;
        const real *restrict lv = log_var + i * cols;
        const real *restrict e = eps + i * cols;
        real *restrict zi = z + i * cols;
        real *restrict si = std + i * cols;
        real sum = 0;
#pragma omp simd reduction(+ : sum)
        for (int64_t j = 0; j < cols; j++) {
            real sigma = EXP((real)0.5 * lv[j]);
            si[j] = sigma;
            zi[j] = mu[j] + sigma * e[j];
            sum += mu[j] * mu[j] + sigma * sigma - (real)1 - lv[j];
        }
        kl[i] = (real)0.5 * sum;
    }
}

/* The four cases (grad_z and/or grad_kl present) are separate loops: a missing upstream
 * gradient must not touch the arrays it would multiply (0 * inf would be NaN). */
void KERNEL(reparameterize_kl_backward)(const real *loc, const real *eps, const real *std,
                                        const real *grad_z, const real *grad_kl,
                                        int64_t rows, int64_t cols,
                                        real *grad_loc, real *grad_log_var)
{
    for (int64_t i = 0; i < rows; i++) {
        const real *restrict mu = loc + i * cols;
        const real *restrict e = eps + i * cols;
        const real *restrict s = std + i * cols;
        real *restrict gl = grad_loc + i * cols;
        real *restrict glv = grad_log_var + i * cols;
        if (grad_z != NULL && grad_kl != NULL) {
            const real *restrict gz = grad_z + i * cols;
            real gk = grad_kl[i];
#pragma omp simd
            for (int64_t j = 0; j < cols; j++) {
                gl[j] = gz[j] + gk * mu[j];
                glv[j] = (real)0.5 * gz[j] * e[j] * s[j] + (real)0.5 * gk * (s[j] * s[j] - 1);
            }
        } else if (grad_z != NULL) {
            const real *restrict gz = grad_z + i * cols;
#pragma omp simd
            for (int64_t j = 0; j < cols; j++) {
                gl[j] = gz[j];
                glv[j] = (real)0.5 * gz[j] * e[j] * s[j];
            }
        } else if (grad_kl != NULL) {
            real gk = grad_kl[i];
#pragma omp simd
            for (int64_t j = 0; j < cols; j++) {
                gl[j] = gk * mu[j];
                glv[j] = (real)0.5 * gk * (s[j] * s[j] - 1);
            }
        } else {
            for (int64_t j = 0; j < cols; j++) {
                gl[j] = 0;
                glv[j] = 0;
            }
        }
    }
}

/* One branch-free pass over the flat buffers: memory traffic, not arithmetic, sets the pace. */
void KERNEL(adam_step)(real *param, const real *grad, real *m, real *v, int64_t n,
                       real beta1, real one_minus_beta1, real beta2, real one_minus_beta2,
                       real eps, real step_size, real root_correction)
{
    real *restrict p = param;
    const real *restrict g = grad;
    real *restrict mm = m;
    real *restrict vv = v;
#pragma omp simd
    for (int64_t idx = 0; idx < n; idx++) {
        real m_new = beta1 * mm[idx] + one_minus_beta1 * g[idx];
        real v_new = beta2 * vv[idx] + one_minus_beta2 * g[idx] * g[idx];
        mm[idx] = m_new;
        vv[idx] = v_new;
        p[idx] -= step_size * m_new / (SQRT(v_new) / root_correction + eps);
    }
}

void KERNEL(sgd_step)(real *param, const real *grad, real *buf, int64_t n,
                      real lr, real momentum, int restart)
{
    real *restrict p = param;
    const real *restrict g = grad;
    real *restrict b = buf;
    if (restart) {
#pragma omp simd
        for (int64_t idx = 0; idx < n; idx++) {
            b[idx] = g[idx];
            p[idx] -= lr * g[idx];
        }
    } else {
#pragma omp simd
        for (int64_t idx = 0; idx < n; idx++) {
            real b_new = momentum * b[idx] + g[idx];
            b[idx] = b_new;
            p[idx] -= lr * b_new;
        }
    }
}

/* A row of all -inf or one holding +inf has no finite maximum: shifting by 0 then gives -inf
 * or +inf exactly; NaN passes through the sum. */
void KERNEL(logsumexp_rows)(const real *a, int64_t rows, int64_t cols, real *out)
{
    for (int64_t i = 0; i < rows; i++) {
        const real *restrict ai = a + i * cols;
        real top = -INFINITY;
#pragma omp simd reduction(max : top)
        for (int64_t j = 0; j < cols; j++)
            top = ai[j] > top ? ai[j] : top;
        if (!isfinite(top))
            top = 0;
        real sum = 0;
#pragma omp simd reduction(+ : sum)
        for (int64_t j = 0; j < cols; j++)
            sum += EXP(ai[j] - top);
        out[i] = LOG(sum) + top;
    }
}

/* The textbook order: for each c_ij, walk row i of a and column j of b.  The column walk
 * strides through memory, which is what matmul_blocked is there to fix. */
void KERNEL(matmul_naive)(const real *a, const real *b, int64_t n, int64_t k, int64_t m, real *c)
{
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < m; j++) {
            real sum = 0;
            for (int64_t p = 0; p < k; p++)
                sum += a[i * k + p] * b[p * m + j];
            c[i * m + j] = sum;
        }
}

/* Tile by tile (block x block), and i-k-j inside a tile: the innermost loop runs along a row
 * of b and a row of c, both contiguous, while a tile of each stays in cache. */
void KERNEL(matmul_blocked)(const real *a, const real *b, int64_t n, int64_t k, int64_t m,
                            int64_t block, real *c)
{
    for (int64_t idx = 0; idx < n * m; idx++)
        c[idx] = 0;
    for (int64_t i0 = 0; i0 < n; i0 += block) {
        int64_t i1 = i0 + block < n ? i0 + block : n;
        for (int64_t p0 = 0; p0 < k; p0 += block) {
            int64_t p1 = p0 + block < k ? p0 + block : k;
            for (int64_t j0 = 0; j0 < m; j0 += block) {
                int64_t j1 = j0 + block < m ? j0 + block : m;
                for (int64_t i = i0; i < i1; i++)
                    for (int64_t p = p0; p < p1; p++) {
                        real a_ip = a[i * k + p];
                        real *restrict ci = c + i * m;
                        const real *restrict bp = b + p * m;
#pragma omp simd
                        for (int64_t j = j0; j < j1; j++)
                            ci[j] += a_ip * bp[j];
                    }
            }
        }
    }
}

#endif /* MINIVAE_KERNEL_BODY */
