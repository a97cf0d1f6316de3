// Convolution output-channel pruning for CNN graphs (pass prune_structured,
// option conv_ratio): the graph analysis, scoring and rewrite.
//
// A channel group starts at a Conv (group = 1, constant weight W [C, ...])
// and follows its C output channels (axis 1) forward through ops that act
// on each channel alone:
//   BatchNormalization / InstanceNormalization  (their [C] parameters follow)
//   unary activations, Dropout, Cast, pools (MaxPool, AveragePool, Global*)
//   Mul/Add/Sub/Div/PRelu with a scalar or per-channel constant ([C,1,1],
//     [1,C,1,1], ...: selected along its C axis) or with another value of
//     the same group (x * Sigmoid(x))
//   depthwise Conv (group = C, W [C, 1, ...]): its filters, bias and group
//     attribute follow, and its output carries the channels on
// to the consumers that read them, whose input channels are removed:
//   Conv (group 1: W[:, c]; grouped: W of each output group reads its own
//     input group, so every group keeps the same number of channels)
//   Gemm / MatMul with a constant weight, directly on [N, C] or after
//     Flatten(axis 1) of [N, C, spatial...]: columns c * S .. c * S + S - 1
//     for S spatial positions (static shapes needed)
// Anything else that reads a channel value (an Add or Concat with another
// branch, a graph output, Reshape, Transpose, ...) leaves the group alone:
// the report names the node. Channels meeting in a residual Add are
// therefore never pruned (the inner channels of a residual block are).
//
// Importance of channel c: with calibration statistics of the consumers'
// inputs, sum over consumers and kernel offsets of E[x_{c,k}^2] times the
// squared norm of the consumer's weights reading (c, k), the channel's
// expected squared contribution to the consumers' outputs; without, the
// squared norms of the producer's filter (times the BatchNormalization
// scale gamma^2 / (var + eps)) and of the consumers' weights reading it.
// With the im2col Gram matrix of a consumer (reconstruct), the consumer is
// refitted on the kept channels by ridge least squares over its patches
// (numerics/prune.h RefitKeptInputs, the FFN refit over C * K columns).
#pragma once

#include <regex>
#include <string>

#include "libcompress/ir/graph.h"
#include "libcompress/pipeline/pass.h"

namespace slim {

struct ConvPruneOptions {
  double ratio = 0.25;   // fraction of each group's channels removed
  size_t multiple = 8;   // kept channels rounded to a multiple of this
  bool reconstruct = true;
  double damp = 0.01;
  std::string protect;   // regular expression over weight names ("" = none)
};

// Removes channels of every Conv channel group of `g` (rewritten in place
// unless ctx.dry_run) and appends a row per weight to `report` (a row of the
// same name already there, from the FFN part, is updated).
Status PruneConvChannels(Graph& g, const PassContext& ctx, const ConvPruneOptions& options, PassReport* report);

}  // namespace slim
