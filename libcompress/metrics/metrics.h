// Accuracy metrics between a reference model's outputs and a compressed
// model's: per-token NLL, KL divergence, top-1 agreement, cosine and
// relative L2. Inputs are raw logits rows (float32); all reductions are done
// in double so results do not depend on summation order artefacts.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace slim::metrics {

// log-softmax of one row of logits, in double.
std::vector<double> LogSoftmax(const float* logits, size_t n);

// -log p(target) under softmax(logits).
double TokenNll(const float* logits, size_t n, int64_t target);

// KL(P_ref || P_test) for one position (nats).
double KlDivergence(const float* ref_logits, const float* test_logits, size_t n);

// argmax index (first maximum on ties).
size_t ArgMax(const float* x, size_t n);

double Cosine(const float* a, const float* b, size_t n);
// ||a - b|| / ||a|| (0 when both are zero).
double RelativeL2(const float* ref, const float* test, size_t n);

// q-quantile (0..1) of values with linear interpolation (numpy default).
double Percentile(std::vector<double> values, double q);

}  // namespace slim::metrics
