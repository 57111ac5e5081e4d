/* minivae's fused kernels in C: one float32 (_f32) and one float64 (_f64) version of each.
 *
 * They are the twins of the Python loops in minivae/kernels/reference.py.  minivae.kernels checks
 * shapes, dtypes and layouts before calling these, so the C side trusts its arguments:
 * every array is C-contiguous, `rows` x `cols` means row-major, and sizes are element counts.
 *
 * This header is also the cffi declaration list (minivae/kernels/_build_c.py strips the
 * preprocessor lines), so it holds plain prototypes only: no macros, no attributes.
 */
#ifndef MINIVAE_KERNELS_H
#define MINIVAE_KERNELS_H

#include <stdint.h>

/* Activation codes for bias_act_forward / bias_act_backward (reference.ACTIVATIONS order). */
enum minivae_activation {
    MINIVAE_IDENTITY = 0,
    MINIVAE_RELU = 1,
    MINIVAE_LEAKY_RELU = 2,
    MINIVAE_TANH = 3,
    MINIVAE_SIGMOID = 4,
    MINIVAE_SOFTPLUS = 5
};

/* row_sums[i] = sum_j x_tj l_ij - softplus(l_ij), t = i mod x_rows (targets repeat every x_rows
 * rows: one image scored under several samples); grad_logits (NULL: skipped) = x_t - sigmoid(l). */
void bernoulli_log_prob_f32(const float *logits, const float *x, int64_t rows, int64_t cols,
                            int64_t x_rows, float *row_sums, float *grad_logits);
void bernoulli_log_prob_f64(const double *logits, const double *x, int64_t rows, int64_t cols,
                            int64_t x_rows, double *row_sums, double *grad_logits);

/* out = act(h + bias) with bias broadcast over rows; out may be h itself. */
void bias_act_forward_f32(const float *h, const float *bias, int64_t rows, int64_t cols,
                          int activation, float slope, float *out);
void bias_act_forward_f64(const double *h, const double *bias, int64_t rows, int64_t cols,
                          int activation, double slope, double *out);

/* grad_h = grad_y * act'(from y); grad_bias = column sums of grad_h. */
void bias_act_backward_f32(const float *y, const float *grad_y, int64_t rows, int64_t cols,
                           int activation, float slope, float *grad_h, float *grad_bias);
void bias_act_backward_f64(const double *y, const double *grad_y, int64_t rows, int64_t cols,
                           int activation, double slope, double *grad_h, double *grad_bias);

/* std = exp(log_var / 2), z = loc + std * eps, kl[i] = 1/2 sum_j (loc^2 + std^2 - 1 - log_var). */
void reparameterize_kl_forward_f32(const float *loc, const float *log_var, const float *eps,
                                   int64_t rows, int64_t cols,
                                   float *z, float *kl, float *std);
void reparameterize_kl_forward_f64(const double *loc, const double *log_var, const double *eps,
                                   int64_t rows, int64_t cols,
                                   double *z, double *kl, double *std);

/* Gradients w.r.t. (loc, log_var); grad_z (rows x cols) or grad_kl (rows) may be NULL (zero). */
void reparameterize_kl_backward_f32(const float *loc, const float *eps, const float *std,
                                    const float *grad_z, const float *grad_kl,
                                    int64_t rows, int64_t cols,
                                    float *grad_loc, float *grad_log_var);
void reparameterize_kl_backward_f64(const double *loc, const double *eps, const double *std,
                                    const double *grad_z, const double *grad_kl,
                                    int64_t rows, int64_t cols,
                                    double *grad_loc, double *grad_log_var);

/* Adam, in place: step_size = lr / (1 - beta1^t), root_correction = sqrt(1 - beta2^t). */
void adam_step_f32(float *param, const float *grad, float *m, float *v, int64_t n,
                   float beta1, float one_minus_beta1, float beta2, float one_minus_beta2,
                   float eps, float step_size, float root_correction);
void adam_step_f64(double *param, const double *grad, double *m, double *v, int64_t n,
                   double beta1, double one_minus_beta1, double beta2, double one_minus_beta2,
                   double eps, double step_size, double root_correction);

/* SGD with heavy-ball momentum, in place; restart != 0: buf = grad (first step or momentum 0). */
void sgd_step_f32(float *param, const float *grad, float *buf, int64_t n,
                  float lr, float momentum, int restart);
void sgd_step_f64(double *param, const double *grad, double *buf, int64_t n,
                  double lr, double momentum, int restart);

/* out[i] = log sum_j exp(a_ij), shifted by the row maximum. */
void logsumexp_rows_f32(const float *a, int64_t rows, int64_t cols, float *out);
void logsumexp_rows_f64(const double *a, int64_t rows, int64_t cols, double *out);

/* Teaching kernels: c (n x m) = a (n x k) b (k x m), written over c. */
void matmul_naive_f32(const float *a, const float *b, int64_t n, int64_t k, int64_t m, float *c);
void matmul_naive_f64(const double *a, const double *b, int64_t n, int64_t k, int64_t m,
                      double *c);
void matmul_blocked_f32(const float *a, const float *b, int64_t n, int64_t k, int64_t m,
                        int64_t block, float *c);
void matmul_blocked_f64(const double *a, const double *b, int64_t n, int64_t k, int64_t m,
                        int64_t block, double *c);

#endif
