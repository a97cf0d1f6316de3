#include "libcompress/ir/shape_inference.h"

#include <algorithm>
#include <limits>
#include <set>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace slim {
namespace {

using OptShape = std::optional<Shape>;
using Values = std::vector<Dim>;  // elements of a small integer tensor

// Integer tensors at most this large are tracked as values (shape vectors,
// axes, Range bounds); weights never are.
constexpr int64_t kMaxTrackedElements = 64;

// Dims, shape values and attributes come from the file, so arithmetic on
// them is checked: false on int64 overflow (the caller then leaves the
// result unknown or reports the graph).
bool CheckedMul(int64_t a, int64_t b, int64_t* r) { return !__builtin_mul_overflow(a, b, r); }
bool CheckedAdd(int64_t a, int64_t b, int64_t* r) { return !__builtin_add_overflow(a, b, r); }
bool CheckedSub(int64_t a, int64_t b, int64_t* r) { return !__builtin_sub_overflow(a, b, r); }

int64_t Rank(const Shape& s) { return static_cast<int64_t>(s.size()); }

bool IsIntType(DType t) {
  return t == DType::kInt64 || t == DType::kInt32 || t == DType::kInt16 || t == DType::kInt8 ||
         t == DType::kUInt8 || t == DType::kUInt16 || t == DType::kUInt32 || t == DType::kUInt64;
}

Shape StaticShape(const std::vector<int64_t>& dims) { return Shape(dims.begin(), dims.end()); }

// Broadcasts two dims (numpy rules). Returns false on a provable mismatch.
bool BroadcastDim(const Dim& a, const Dim& b, Dim* out) {
  if (a.is_static() && a.value == 1) { *out = b; return true; }
  if (b.is_static() && b.value == 1) { *out = a; return true; }
  if (a.is_static() && b.is_static()) {
    *out = a;
    return a.value == b.value;
  }
  // A symbol that meets a static dim > 1 must equal it (or the model fails
  // at run time); a symbol that may be 1 cannot be ruled out otherwise.
  if (a.is_static()) { *out = a; return true; }
  if (b.is_static()) { *out = b; return true; }
  if (!a.symbol.empty() && a.symbol == b.symbol) { *out = a; return true; }
  *out = Dim();
  return true;
}

// Merges two dims known to be equal (Concat non-axis dims, MatMul K).
Dim MergeDim(const Dim& a, const Dim& b) {
  if (a.is_static()) return a;
  if (b.is_static()) return b;
  return a.symbol.empty() ? b : a;
}

class Inferrer {
 public:
  explicit Inferrer(Graph& graph) : g_(graph) {}

  Expected<ShapeInferenceStats> Run() {
    for (const ValueInfo& vi : g_.inputs) known_[vi.name] = vi;
    for (const auto& kv : g_.value_info) known_.emplace(kv.first, kv.second);
    for (const std::string& name : g_.initializer_names()) {
      const Tensor* t = g_.FindInitializer(name);
      known_[name] = ValueInfo{name, t->dtype(), StaticShape(t->shape())};
      TrackTensor(name, *t);
    }
    ShapeInferenceStats stats;
    for (const Node& node : g_.nodes) {
      node_ = &node;
      outs_.assign(node.outputs.size(), ValueInfo{});
      SLIM_RETURN_IF_ERROR(InferNode());
      for (size_t i = 0; i < node.outputs.size(); ++i) {
        const std::string& name = node.outputs[i];
        if (name.empty()) continue;
        ValueInfo vi = outs_[i];
        vi.name = name;
        auto prior = known_.find(name);
        if (prior != known_.end()) {
          // Keep what the reader declared where inference learnt less.
          if (vi.dtype == DType::kUndefined) vi.dtype = prior->second.dtype;
          if (!vi.shape) vi.shape = prior->second.shape;
        }
        if (vi.shape) {
          ++stats.inferred;
          const bool vague = std::any_of(vi.shape->begin(), vi.shape->end(), [](const Dim& d) {
            return !d.is_static() && d.symbol.empty();
          });
          if (vague) ++stats.partial;
        } else {
          ++stats.unknown;
        }
        known_[name] = vi;
        g_.value_info[name] = vi;
      }
    }
    return stats;
  }

 private:
  // ---- lookups -----------------------------------------------------------
  const ValueInfo* In(size_t i) const {
    const std::string& name = node_->Input(i);
    if (name.empty()) return nullptr;
    auto it = known_.find(name);
    return it == known_.end() ? nullptr : &it->second;
  }
  OptShape InShape(size_t i) const {
    const ValueInfo* v = In(i);
    return v ? v->shape : std::nullopt;
  }
  DType InType(size_t i) const {
    const ValueInfo* v = In(i);
    return v ? v->dtype : DType::kUndefined;
  }
  const Values* InValues(size_t i) const {
    const std::string& name = node_->Input(i);
    if (name.empty()) return nullptr;
    auto it = values_.find(name);
    return it == values_.end() ? nullptr : &it->second;
  }
  // Small integer initializers and Constants are tracked as values.
  void TrackTensor(const std::string& name, const Tensor& t) {
    if (!IsIntType(t.dtype()) || t.rank() > 1 || t.numel() < 0 || t.numel() > kMaxTrackedElements)
      return;
    Values v;
    for (int64_t i = 0; i < t.numel(); ++i) v.push_back(Literal(t.IntAt(i)));
    values_[name] = std::move(v);
  }
  // Negative literals (-1) are recorded with the marker symbol so they are
  // not confused with "unknown" (value -1, no symbol).
  static Dim Literal(int64_t v) {
    if (v >= 0) return Dim(v);
    Dim d;
    d.value = v;
    d.symbol = kNegative;
    return d;
  }
  static bool IsLiteral(const Dim& d) { return d.is_static() || d.symbol == kNegative; }

  std::optional<std::vector<int64_t>> InLiterals(size_t i) const {
    const Values* v = InValues(i);
    if (!v) return std::nullopt;
    std::vector<int64_t> out;
    for (const Dim& d : *v) {
      if (!IsLiteral(d)) return std::nullopt;
      out.push_back(d.value);
    }
    return out;
  }
  // Axes from an attribute (old opsets) or from input `input` (new ones).
  std::optional<std::vector<int64_t>> Axes(size_t input) const {
    if (node_->HasAttr("axes")) return node_->GetInts("axes");
    if (node_->Input(input).empty()) return std::vector<int64_t>{};
    return InLiterals(input);
  }

  // ---- outputs -----------------------------------------------------------
  void Set(size_t i, DType t, OptShape s) {
    if (i >= outs_.size()) return;
    outs_[i].dtype = t;
    outs_[i].shape = std::move(s);
  }
  void SetValues(size_t i, Values v) {
    if (i < node_->outputs.size() && !node_->outputs[i].empty()) values_[node_->outputs[i]] = std::move(v);
  }
  Dim Fresh() { return Dim("unk__" + std::to_string(fresh_++)); }

  Status Error(const std::string& what) const {
    return InvalidInput("shape inference: ", node_->Describe(), ": ", what);
  }
  bool NormAxis(int64_t axis, int64_t rank, int64_t* out) const {
    if (axis < 0) axis += rank;
    if (axis < 0 || axis >= rank) return false;
    *out = axis;
    return true;
  }

  // ---- rules -------------------------------------------------------------
  Status Broadcast(const std::vector<OptShape>& shapes, OptShape* out) const {
    Shape result;
    for (const OptShape& s : shapes) {
      if (!s) { *out = std::nullopt; return Status::Ok(); }
    }
    for (const OptShape& s : shapes) {
      Shape a = *s;
      size_t n = std::max(a.size(), result.size());
      Shape merged(n);
      for (size_t k = 0; k < n; ++k) {
        Dim x = k < n - a.size() ? Dim(1) : a[k - (n - a.size())];
        Dim y = k < n - result.size() ? Dim(1) : result[k - (n - result.size())];
        if (!BroadcastDim(x, y, &merged[k]))
          return Error("cannot broadcast " + ShapeToString(*s) + " with " + ShapeToString(result));
      }
      result = std::move(merged);
    }
    *out = std::move(result);
    return Status::Ok();
  }

  // Elementwise arithmetic on tracked values (shape math: b * s, n / h).
  void PropagateArithmetic(const std::string& op) {
    const Values* a = InValues(0);
    const Values* b = InValues(1);
    if (!a || !b) return;
    if (a->size() != b->size() && a->size() != 1 && b->size() != 1) return;
    size_t n = std::max(a->size(), b->size());
    Values out;
    for (size_t k = 0; k < n; ++k) {
      const Dim& x = (*a)[a->size() == 1 ? 0 : k];
      const Dim& y = (*b)[b->size() == 1 ? 0 : k];
      if (!IsLiteral(x) || !IsLiteral(y)) {
        // x * 1, x + 0, x / 1 keep the symbol.
        bool keep_x = IsLiteral(y) && ((op == "Mul" || op == "Div") ? y.value == 1 : y.value == 0);
        bool keep_y = IsLiteral(x) && ((op == "Mul") ? x.value == 1 : (op == "Add" && x.value == 0));
        out.push_back(keep_x ? x : keep_y ? y : Dim());
        continue;
      }
      int64_t r = 0;
      bool ok = true;
      if (op == "Add") ok = CheckedAdd(x.value, y.value, &r);
      else if (op == "Sub") ok = CheckedSub(x.value, y.value, &r);
      else if (op == "Mul") ok = CheckedMul(x.value, y.value, &r);
      else if (y.value == 0 || (y.value == -1 && x.value == std::numeric_limits<int64_t>::min())) return;
      else r = x.value / y.value;
      out.push_back(ok ? Literal(r) : Dim());
    }
    SetValues(0, std::move(out));
  }

  // Exporters guard shape vectors with Where(Equal(shape, -1), 1, shape):
  // a dim (static or named) is never negative, so Equal is decidable
  // against a negative literal even when the dim is a symbol.
  void PropagateEqual() {
    const Values* a = InValues(0);
    const Values* b = InValues(1);
    if (!a || !b || (a->size() != b->size() && a->size() != 1 && b->size() != 1)) return;
    Values out;
    for (size_t k = 0; k < std::max(a->size(), b->size()); ++k) {
      const Dim& x = (*a)[a->size() == 1 ? 0 : k];
      const Dim& y = (*b)[b->size() == 1 ? 0 : k];
      const bool x_dim = !x.symbol.empty() && x.symbol != kNegative;
      const bool y_dim = !y.symbol.empty() && y.symbol != kNegative;
      if (IsLiteral(x) && IsLiteral(y)) out.push_back(Dim(int64_t{x.value == y.value ? 1 : 0}));
      else if ((x_dim && IsLiteral(y) && y.value < 0) || (y_dim && IsLiteral(x) && x.value < 0)) out.push_back(Dim(int64_t{0}));
      else if (x_dim && y_dim && x.symbol == y.symbol) out.push_back(Dim(int64_t{1}));
      else return;
    }
    SetValues(0, std::move(out));
  }

  void PropagateWhere() {
    const Values* c = InValues(0);
    const Values* x = InValues(1);
    const Values* y = InValues(2);
    if (!c || !x || !y) return;
    const size_t n = std::max({c->size(), x->size(), y->size()});
    for (const Values* v : {c, x, y}) {
      if (v->size() != n && v->size() != 1) return;
    }
    Values out;
    for (size_t k = 0; k < n; ++k) {
      const Dim& cond = (*c)[c->size() == 1 ? 0 : k];
      if (!IsLiteral(cond)) return;
      out.push_back(cond.value != 0 ? (*x)[x->size() == 1 ? 0 : k] : (*y)[y->size() == 1 ? 0 : k]);
    }
    SetValues(0, std::move(out));
  }

  Status InferNode() {
    const Node& n = *node_;
    const std::string& op = n.op_type;
    if (n.domain == "slimpack") return InferSlimpack();
    if (!n.domain.empty() && n.domain != "ai.onnx" && n.domain != "com.microsoft") return Status::Ok();

    static const std::set<std::string> kUnary = {
        "Relu", "LeakyRelu", "Elu", "Selu", "Celu", "Gelu", "FastGelu", "QuickGelu", "Sigmoid",
        "HardSigmoid", "HardSwish", "Tanh", "Erf", "Exp", "Log", "Sqrt", "Neg", "Abs", "Reciprocal",
        "Sin", "Cos", "Tan", "Floor", "Ceil", "Round", "Sign", "Softplus", "Softsign", "Mish",
        "Clip", "Identity", "Trilu", "Softmax", "LogSoftmax", "BatchNormalization", "Dropout",
        "InstanceNormalization", "LpNormalization", "ThresholdedRelu", "Shrink", "Not",
        "BitwiseNot", "CumSum"};
    static const std::set<std::string> kBinary = {"Add", "Sub", "Mul", "Div", "Pow", "Max", "Min",
                                                  "Sum", "Mean", "Mod", "PRelu", "BitShift",
                                                  "BitwiseAnd", "BitwiseOr", "BitwiseXor"};
    static const std::set<std::string> kCompare = {"Equal", "Less", "Greater", "LessOrEqual",
                                                   "GreaterOrEqual", "And", "Or", "Xor"};
    if (kUnary.count(op)) {
      Set(0, InType(0), InShape(0));
      if (op == "Dropout") Set(1, DType::kBool, InShape(0));
      if (op == "Identity") {
        if (const Values* v = InValues(0)) SetValues(0, *v);
      }
      return Status::Ok();
    }
    if (kBinary.count(op) || kCompare.count(op)) {
      std::vector<OptShape> shapes;
      for (size_t i = 0; i < n.inputs.size(); ++i) shapes.push_back(InShape(i));
      OptShape out;
      SLIM_RETURN_IF_ERROR(Broadcast(shapes, &out));
      Set(0, kCompare.count(op) ? DType::kBool : InType(0), out);
      if (op == "Add" || op == "Sub" || op == "Mul" || op == "Div") PropagateArithmetic(op);
      if (op == "Equal") PropagateEqual();
      return Status::Ok();
    }
    if (op == "IsNaN" || op == "IsInf") { Set(0, DType::kBool, InShape(0)); return Status::Ok(); }
    if (op == "Where") {
      OptShape out;
      SLIM_RETURN_IF_ERROR(Broadcast({InShape(0), InShape(1), InShape(2)}, &out));
      Set(0, InType(1) != DType::kUndefined ? InType(1) : InType(2), out);
      PropagateWhere();
      return Status::Ok();
    }
    if (op == "Cast" || op == "CastLike") {
      DType to = op == "Cast" ? DTypeFromOnnx(static_cast<int32_t>(n.GetInt("to", 0))) : InType(1);
      Set(0, to, InShape(0));
      if (IsIntType(to)) {
        if (const Values* v = InValues(0)) SetValues(0, *v);
      }
      return Status::Ok();
    }
    if (op == "Constant") return InferConstant();
    if (op == "MatMul") return InferMatMul(InShape(0), InShape(1), InType(0));
    if (op == "Gemm") return InferGemm();
    if (op == "Transpose") return InferTranspose();
    if (op == "Reshape") return InferReshape();
    if (op == "Concat") return InferConcat();
    if (op == "Gather") return InferGather();
    if (op == "Slice") return InferSlice();
    if (op == "Split") return InferSplit();
    if (op == "Squeeze") return InferSqueeze();
    if (op == "Unsqueeze") return InferUnsqueeze();
    if (op == "Shape") return InferShapeOp();
    if (op == "Size") { Set(0, DType::kInt64, Shape{}); return Status::Ok(); }
    if (op == "LayerNormalization" || op == "SimplifiedLayerNormalization")
      return InferLayerNorm();
    if (op == "ReduceMean" || op == "ReduceSum" || op == "ReduceMax" || op == "ReduceMin" ||
        op == "ReduceProd" || op == "ReduceL2" || op == "ReduceSumSquare")
      return InferReduce();
    if (op == "ArgMax" || op == "ArgMin") return InferArg();
    if (op == "Expand") return InferExpand();
    if (op == "Range") return InferRange();
    if (op == "ConstantOfShape") return InferConstantOfShape();
    if (op == "Conv" || op == "MaxPool" || op == "AveragePool") return InferConvPool();
    if (op == "GlobalAveragePool" || op == "GlobalMaxPool") return InferGlobalPool();
    if (op == "Flatten") return InferFlatten();
    for (size_t i = 0; i < n.outputs.size(); ++i) Set(i, DType::kUndefined, std::nullopt);
    return Status::Ok();
  }

  Status InferSlimpack() {
    const std::string& op = node_->op_type;
    if (op == "MatMulQ") {
      OptShape a = InShape(0);
      if (a && a->empty()) return Error("input A is a scalar");
      if (a) {
        const int64_t k = node_->GetInt("K", -1);
        if (k >= 0 && a->back().is_static() && a->back().value != k)
          return Error("A's last dim " + std::to_string(a->back().value) + " != K " + std::to_string(k));
        a->back() = node_->HasAttr("N") ? Dim(node_->GetInt("N", 0)) : Dim();
      }
      Set(0, InType(0), a);
    } else if (op == "GatherQ") {
      OptShape w = InShape(0);
      OptShape idx = InShape(1);
      if (idx && w && w->size() == 2) idx->push_back((*w)[1]);
      else idx = std::nullopt;
      Set(0, DType::kFloat32, idx);
    }
    return Status::Ok();
  }

  Status InferConstant() {
    const Node& n = *node_;
    if (n.HasAttr("value")) {
      const Tensor& t = n.attrs.at("value").t;
      Set(0, t.dtype(), StaticShape(t.shape()));
      if (!node_->outputs.empty()) TrackTensor(node_->outputs[0], t);
    } else if (n.HasAttr("value_int")) {
      Set(0, DType::kInt64, Shape{});
      SetValues(0, {Literal(n.GetInt("value_int", 0))});
    } else if (n.HasAttr("value_ints")) {
      std::vector<int64_t> v = n.GetInts("value_ints");
      Set(0, DType::kInt64, Shape{Dim(static_cast<int64_t>(v.size()))});
      Values vals;
      for (int64_t x : v) vals.push_back(Literal(x));
      SetValues(0, std::move(vals));
    } else if (n.HasAttr("value_float")) {
      Set(0, DType::kFloat32, Shape{});
    } else if (n.HasAttr("value_floats")) {
      Set(0, DType::kFloat32, Shape{Dim(static_cast<int64_t>(n.GetFloats("value_floats").size()))});
    }
    return Status::Ok();
  }

  Status InferMatMul(OptShape a, OptShape b, DType dtype) {
    if (!a || !b) { Set(0, dtype, std::nullopt); return Status::Ok(); }
    if (a->empty() || b->empty()) return Error("MatMul input is a scalar");
    const bool a_vec = a->size() == 1;
    const bool b_vec = b->size() == 1;
    if (a_vec) a->insert(a->begin(), Dim(1));
    if (b_vec) b->push_back(Dim(1));
    const Dim& ka = (*a)[a->size() - 1];
    const Dim& kb = (*b)[b->size() - 2];
    if (ka.is_static() && kb.is_static() && ka.value != kb.value)
      return Error("inner dims differ: " + ShapeToString(*a) + " x " + ShapeToString(*b));
    OptShape batch;
    SLIM_RETURN_IF_ERROR(Broadcast({Shape(a->begin(), a->end() - 2), Shape(b->begin(), b->end() - 2)}, &batch));
    Shape out = *batch;
    if (!a_vec) out.push_back((*a)[a->size() - 2]);
    if (!b_vec) out.push_back(b->back());
    Set(0, dtype, out);
    return Status::Ok();
  }

  Status InferGemm() {
    OptShape a = InShape(0);
    OptShape b = InShape(1);
    if (!a || !b) { Set(0, InType(0), std::nullopt); return Status::Ok(); }
    if (a->size() != 2 || b->size() != 2) return Error("Gemm inputs must be 2-D");
    const bool ta = node_->GetInt("transA", 0) != 0;
    const bool tb = node_->GetInt("transB", 0) != 0;
    Dim m = (*a)[ta ? 1 : 0], ka = (*a)[ta ? 0 : 1];
    Dim kb = (*b)[tb ? 1 : 0], nn = (*b)[tb ? 0 : 1];
    if (ka.is_static() && kb.is_static() && ka.value != kb.value)
      return Error("inner dims differ: " + ShapeToString(*a) + " x " + ShapeToString(*b));
    Set(0, InType(0), Shape{m, nn});
    return Status::Ok();
  }

  Status InferTranspose() {
    OptShape x = InShape(0);
    if (!x) { Set(0, InType(0), std::nullopt); return Status::Ok(); }
    std::vector<int64_t> perm = node_->GetInts("perm");
    if (perm.empty()) {
      for (int64_t i = Rank(*x) - 1; i >= 0; --i) perm.push_back(i);
    }
    if (perm.size() != x->size()) return Error("perm has " + std::to_string(perm.size()) + " entries for rank " + std::to_string(x->size()));
    Shape out;
    for (int64_t p : perm) {
      int64_t axis = 0;
      if (!NormAxis(p, Rank(*x), &axis)) return Error("perm entry " + std::to_string(p) + " out of range");
      out.push_back((*x)[static_cast<size_t>(axis)]);
    }
    Set(0, InType(0), out);
    return Status::Ok();
  }

  Status InferReshape() {
    OptShape x = InShape(0);
    const Values* target = InValues(1);
    const bool allowzero = node_->GetInt("allowzero", 0) != 0;
    if (!target) {
      OptShape s = InShape(1);
      if (s && s->size() == 1 && (*s)[0].is_static())
        Set(0, InType(0), Shape(static_cast<size_t>((*s)[0].value)));
      else
        Set(0, InType(0), std::nullopt);
      return Status::Ok();
    }
    Shape out;
    int infer_at = -1;
    for (size_t k = 0; k < target->size(); ++k) {
      const Dim& d = (*target)[k];
      if (IsLiteral(d) && d.value == 0 && !allowzero) {
        if (!x || k >= x->size()) return Error("shape entry 0 copies a dim the input does not have");
        out.push_back((*x)[k]);
      } else if (IsLiteral(d) && d.value == -1) {
        if (infer_at >= 0) return Error("shape has more than one -1");
        infer_at = static_cast<int>(k);
        out.push_back(Dim());
      } else if (IsLiteral(d) && d.value < -1) {
        return Error("shape entry " + std::to_string(d.value) + " is negative");
      } else {
        out.push_back(d);
      }
    }
    if (infer_at >= 0) out[static_cast<size_t>(infer_at)] = InferMinusOne(x, out, static_cast<size_t>(infer_at));
    Set(0, InType(0), out);
    if (out.size() <= 1) {
      if (const Values* v = InValues(0)) SetValues(0, *v);  // shape vectors reshaped to [-1]
    }
    return Status::Ok();
  }

  // The -1 entry of a Reshape: input numel / product of the other entries,
  // with symbols cancelled pairwise; a fresh symbol when they do not cancel.
  Dim InferMinusOne(const OptShape& x, const Shape& out, size_t at) {
    if (!x) return Fresh();
    std::multiset<std::string> syms;
    int64_t in_static = 1;
    for (const Dim& d : *x) {
      if (d.is_static()) {
        if (!CheckedMul(in_static, d.value, &in_static)) return Fresh();
      } else if (d.symbol.empty()) return Fresh();
      else syms.insert(d.symbol);
    }
    int64_t out_static = 1;
    for (size_t k = 0; k < out.size(); ++k) {
      if (k == at) continue;
      const Dim& d = out[k];
      if (d.is_static()) {
        if (!CheckedMul(out_static, d.value, &out_static)) return Fresh();
        continue;
      }
      auto it = d.symbol.empty() ? syms.end() : syms.find(d.symbol);
      if (it == syms.end()) return Fresh();
      syms.erase(it);
    }
    if (out_static == 0 || in_static % out_static != 0) return Fresh();
    if (syms.empty()) return Dim(in_static / out_static);
    // A product of symbols gets a canonical name ("batch*seq"), so two
    // Reshapes flattening the same dims agree and later ops broadcast.
    std::string name = in_static == out_static ? "" : std::to_string(in_static / out_static);
    for (const std::string& sym : syms) name += (name.empty() ? "" : "*") + sym;
    return Dim(name);
  }

  Status InferConcat() {
    const Node& n = *node_;
    std::vector<Shape> shapes;
    bool all_known = true;
    for (size_t i = 0; i < n.inputs.size(); ++i) {
      OptShape s = InShape(i);
      if (!s) { all_known = false; break; }
      shapes.push_back(*s);
    }
    DType dt = InType(0);
    if (!all_known || shapes.empty()) { Set(0, dt, std::nullopt); return Status::Ok(); }
    const int64_t rank = Rank(shapes[0]);
    int64_t axis = 0;
    if (!NormAxis(n.GetInt("axis", 0), rank, &axis)) return Error("axis out of range");
    Shape out = shapes[0];
    int64_t total = 0;
    bool total_known = true;
    std::vector<std::string> sum_terms;  // symbols along the axis, in input order
    bool sum_named = true;
    for (const Shape& s : shapes) {
      if (Rank(s) != rank) return Error("inputs have different ranks");
      for (size_t k = 0; k < s.size(); ++k) {
        if (static_cast<int64_t>(k) == axis) continue;
        if (s[k].is_static() && out[k].is_static() && s[k].value != out[k].value)
          return Error("dim " + std::to_string(k) + " differs: " + ShapeToString(s) + " vs " + ShapeToString(out));
        out[k] = MergeDim(out[k], s[k]);
      }
      const Dim& d = s[static_cast<size_t>(axis)];
      if (d.is_static()) {
        total += d.value;
      } else {
        total_known = false;
        sum_named = sum_named && !d.symbol.empty();
        sum_terms.push_back(d.symbol);
      }
    }
    // Symbolic lengths add up to a named sum ("past_sequence_length +
    // sequence_length"), the ONNX dim_param convention for derived dims.
    Dim along;
    if (total_known) {
      along = Dim(total);
    } else if (sum_named) {
      std::string name;
      for (const std::string& t : sum_terms) name += (name.empty() ? "" : " + ") + t;
      if (total > 0) name += " + " + std::to_string(total);
      along = Dim(name);
    }
    out[static_cast<size_t>(axis)] = along;
    Set(0, dt, out);
    // Shape vectors built by concatenation.
    if (rank == 1) {
      Values vals;
      for (size_t i = 0; i < n.inputs.size(); ++i) {
        const Values* v = InValues(i);
        if (!v) return Status::Ok();
        vals.insert(vals.end(), v->begin(), v->end());
      }
      SetValues(0, std::move(vals));
    }
    return Status::Ok();
  }

  Status InferGather() {
    OptShape data = InShape(0);
    OptShape idx = InShape(1);
    if (!data || !idx) { Set(0, InType(0), std::nullopt); return Status::Ok(); }
    int64_t axis = 0;
    if (!NormAxis(node_->GetInt("axis", 0), Rank(*data), &axis)) return Error("axis out of range");
    Shape out(data->begin(), data->begin() + axis);
    out.insert(out.end(), idx->begin(), idx->end());
    out.insert(out.end(), data->begin() + axis + 1, data->end());
    Set(0, InType(0), out);
    const Values* v = InValues(0);
    std::optional<std::vector<int64_t>> ids = InLiterals(1);
    if (v && ids && data->size() == 1) {
      Values picked;
      for (int64_t id : *ids) {
        int64_t k = id < 0 ? id + static_cast<int64_t>(v->size()) : id;
        if (k < 0 || k >= static_cast<int64_t>(v->size())) return Error("index " + std::to_string(id) + " out of range");
        picked.push_back((*v)[static_cast<size_t>(k)]);
      }
      SetValues(0, std::move(picked));
    }
    return Status::Ok();
  }

  // ONNX Slice clamping of one axis; returns the output length.
  static int64_t SliceLength(int64_t dim, int64_t start, int64_t end, int64_t step) {
    if (start < 0) start += dim;
    if (end < 0) end += dim;
    if (step > 0) {
      start = std::clamp<int64_t>(start, 0, dim);
      end = std::clamp<int64_t>(end, 0, dim);
      return end > start ? (end - start + step - 1) / step : 0;
    }
    start = std::clamp<int64_t>(start, 0, dim - 1);
    end = std::clamp<int64_t>(end, -1, dim - 1);
    return start > end ? (start - end - step - 1) / -step : 0;
  }

  Status InferSlice() {
    OptShape x = InShape(0);
    if (!x) { Set(0, InType(0), std::nullopt); return Status::Ok(); }
    std::optional<std::vector<int64_t>> starts, ends, axes, steps;
    const bool attrs = node_->HasAttr("starts");
    if (attrs) {
      starts = node_->GetInts("starts");
      ends = node_->GetInts("ends");
      axes = node_->GetInts("axes");
    } else {
      starts = InLiterals(1);
      ends = InLiterals(2);
      axes = node_->Input(3).empty() ? std::vector<int64_t>{} : InLiterals(3);
      steps = node_->Input(4).empty() ? std::vector<int64_t>{} : InLiterals(4);
    }
    Shape out = *x;
    if (!axes) {
      // Which axes are sliced is unknown: keep only the rank.
      for (Dim& d : out) d = Dim();
      Set(0, InType(0), out);
      return Status::Ok();
    }
    size_t count = 0;
    if (starts) count = starts->size();
    else if (!axes->empty()) count = axes->size();
    else if (OptShape s = InShape(1); s && s->size() == 1 && (*s)[0].is_static()) count = static_cast<size_t>((*s)[0].value);
    else {
      for (Dim& d : out) d = Dim();
      Set(0, InType(0), out);
      return Status::Ok();
    }
    for (size_t k = 0; k < count; ++k) {
      int64_t axis = axes->empty() ? static_cast<int64_t>(k) : (k < axes->size() ? (*axes)[k] : -1000000);
      if (!NormAxis(axis, Rank(*x), &axis)) return Error("slice axis out of range");
      Dim& d = out[static_cast<size_t>(axis)];
      const int64_t step = steps && k < steps->size() && !steps->empty() ? (*steps)[k] : 1;
      if (steps && step == 0) return Error("slice step is 0");
      const bool steps_known = attrs || steps.has_value();
      if (!starts || !ends || !steps_known || k >= starts->size() || k >= ends->size()) {
        d = Dim();
        continue;
      }
      const int64_t s = (*starts)[k], e = (*ends)[k];
      if (d.is_static()) {
        d = Dim(SliceLength(d.value, s, e, step));
      } else if (!(s == 0 && e >= std::numeric_limits<int32_t>::max() && step == 1)) {
        d = Dim();  // a whole-axis slice keeps the symbol; anything else is unknown
      }
    }
    Set(0, InType(0), out);
    // Slices of shape vectors.
    const Values* v = InValues(0);
    if (v && x->size() == 1 && out[0].is_static() && starts && ends && !starts->empty()) {
      int64_t dim = static_cast<int64_t>(v->size());
      int64_t s = (*starts)[0], step = steps && !steps->empty() ? (*steps)[0] : 1;
      if (s < 0) s += dim;
      s = step > 0 ? std::clamp<int64_t>(s, 0, dim) : std::clamp<int64_t>(s, 0, dim - 1);
      Values picked;
      for (int64_t k = 0; k < out[0].value; ++k) picked.push_back((*v)[static_cast<size_t>(s + k * step)]);
      SetValues(0, std::move(picked));
    }
    return Status::Ok();
  }
  Status InferSplit() {
    OptShape x = InShape(0);
    const size_t nout = node_->outputs.size();
    if (!x) {
      for (size_t i = 0; i < nout; ++i) Set(i, InType(0), std::nullopt);
      return Status::Ok();
    }
    int64_t axis = 0;
    if (!NormAxis(node_->GetInt("axis", 0), Rank(*x), &axis)) return Error("axis out of range");
    std::optional<std::vector<int64_t>> split;
    if (node_->HasAttr("split")) split = node_->GetInts("split");
    else if (!node_->Input(1).empty()) split = InLiterals(1);
    const Dim& d = (*x)[static_cast<size_t>(axis)];
    if (!split && node_->Input(1).empty() && d.is_static() && nout > 0) {
      // Equal parts; the last one is smaller when the dim does not divide.
      const int64_t parts = static_cast<int64_t>(nout);
      const int64_t chunk = (d.value + parts - 1) / parts;
      split = std::vector<int64_t>();
      for (int64_t i = 0; i < parts; ++i) split->push_back(std::min(chunk, d.value - i * chunk));
    }
    if (split && split->size() != nout) return Error("split has " + std::to_string(split->size()) + " sizes for " + std::to_string(nout) + " outputs");
    if (split && d.is_static()) {
      int64_t sum = 0;
      for (int64_t s : *split) sum += s;
      if (sum != d.value) return Error("split sizes sum to " + std::to_string(sum) + ", dim is " + std::to_string(d.value));
    }
    for (size_t i = 0; i < nout; ++i) {
      Shape out = *x;
      out[static_cast<size_t>(axis)] = split ? Dim((*split)[i]) : Dim();
      Set(i, InType(0), out);
    }
    return Status::Ok();
  }

  Status InferSqueeze() {
    OptShape x = InShape(0);
    std::optional<std::vector<int64_t>> axes = Axes(1);
    if (!x || !axes) { Set(0, InType(0), std::nullopt); return Status::Ok(); }
    std::vector<bool> drop(x->size(), false);
    if (axes->empty()) {
      for (size_t k = 0; k < x->size(); ++k) {
        if (!(*x)[k].is_static()) { Set(0, InType(0), std::nullopt); return Status::Ok(); }
        drop[k] = (*x)[k].value == 1;
      }
    }
    for (int64_t a : *axes) {
      int64_t axis = 0;
      if (!NormAxis(a, Rank(*x), &axis)) return Error("axis " + std::to_string(a) + " out of range");
      const Dim& d = (*x)[static_cast<size_t>(axis)];
      if (d.is_static() && d.value != 1) return Error("squeezed axis " + std::to_string(a) + " has size " + std::to_string(d.value));
      drop[static_cast<size_t>(axis)] = true;
    }
    Shape out;
    for (size_t k = 0; k < x->size(); ++k) if (!drop[k]) out.push_back((*x)[k]);
    Set(0, InType(0), out);
    if (const Values* v = InValues(0)) SetValues(0, *v);
    return Status::Ok();
  }

  Status InferUnsqueeze() {
    OptShape x = InShape(0);
    std::optional<std::vector<int64_t>> axes = Axes(1);
    if (!x || !axes) { Set(0, InType(0), std::nullopt); return Status::Ok(); }
    const int64_t rank = Rank(*x) + static_cast<int64_t>(axes->size());
    std::vector<bool> inserted(static_cast<size_t>(rank), false);
    for (int64_t a : *axes) {
      int64_t axis = 0;
      if (!NormAxis(a, rank, &axis) || inserted[static_cast<size_t>(axis)]) return Error("bad axis " + std::to_string(a));
      inserted[static_cast<size_t>(axis)] = true;
    }
    Shape out;
    size_t next = 0;
    for (size_t k = 0; k < inserted.size(); ++k) out.push_back(inserted[k] ? Dim(1) : (*x)[next++]);
    Set(0, InType(0), out);
    if (const Values* v = InValues(0)) SetValues(0, *v);
    return Status::Ok();
  }

  Status InferShapeOp() {
    OptShape x = InShape(0);
    if (!x) { Set(0, DType::kInt64, Shape{Dim()}); return Status::Ok(); }
    const int64_t rank = Rank(*x);
    int64_t start = node_->GetInt("start", 0), end = node_->GetInt("end", rank);
    if (start < 0) start += rank;
    if (end < 0) end += rank;
    start = std::clamp<int64_t>(start, 0, rank);
    end = std::clamp<int64_t>(end, start, rank);
    Values v(x->begin() + start, x->begin() + end);
    Set(0, DType::kInt64, Shape{Dim(end - start)});
    SetValues(0, std::move(v));
    return Status::Ok();
  }

  Status InferLayerNorm() {
    OptShape x = InShape(0);
    Set(0, InType(0), x);
    if (!x) { Set(1, DType::kFloat32, std::nullopt); Set(2, DType::kFloat32, std::nullopt); return Status::Ok(); }
    int64_t axis = 0;
    if (!NormAxis(node_->GetInt("axis", -1), Rank(*x), &axis)) return Error("axis out of range");
    Shape stat = *x;
    for (size_t k = static_cast<size_t>(axis); k < stat.size(); ++k) stat[k] = Dim(1);
    const DType stash = DTypeFromOnnx(static_cast<int32_t>(node_->GetInt("stash_type", 1)));
    Set(1, stash, stat);
    Set(2, stash, stat);
    return Status::Ok();
  }

  Status InferReduce() {
    OptShape x = InShape(0);
    std::optional<std::vector<int64_t>> axes = Axes(1);
    if (!x || !axes) { Set(0, InType(0), std::nullopt); return Status::Ok(); }
    const bool keep = node_->GetInt("keepdims", 1) != 0;
    if (axes->empty() && node_->GetInt("noop_with_empty_axes", 0) != 0) { Set(0, InType(0), x); return Status::Ok(); }
    std::vector<bool> reduce(x->size(), axes->empty());
    for (int64_t a : *axes) {
      int64_t axis = 0;
      if (!NormAxis(a, Rank(*x), &axis)) return Error("axis " + std::to_string(a) + " out of range");
      reduce[static_cast<size_t>(axis)] = true;
    }
    Shape out;
    for (size_t k = 0; k < x->size(); ++k) {
      if (!reduce[k]) out.push_back((*x)[k]);
      else if (keep) out.push_back(Dim(1));
    }
    Set(0, InType(0), out);
    return Status::Ok();
  }

  Status InferArg() {
    OptShape x = InShape(0);
    if (!x) { Set(0, DType::kInt64, std::nullopt); return Status::Ok(); }
    int64_t axis = 0;
    if (!NormAxis(node_->GetInt("axis", 0), Rank(*x), &axis)) return Error("axis out of range");
    Shape out = *x;
    if (node_->GetInt("keepdims", 1) != 0) out[static_cast<size_t>(axis)] = Dim(1);
    else out.erase(out.begin() + axis);
    Set(0, DType::kInt64, out);
    return Status::Ok();
  }

  // A shape given by a tracked value (Expand, ConstantOfShape).
  OptShape ShapeFromValues(size_t input) const {
    if (const Values* v = InValues(input)) {
      Shape s;
      for (const Dim& d : *v) {
        if (d.symbol == kNegative) return std::nullopt;
        s.push_back(d);
      }
      return s;
    }
    OptShape len = InShape(input);
    if (len && len->size() == 1 && (*len)[0].is_static()) return Shape(static_cast<size_t>((*len)[0].value));
    return std::nullopt;
  }

  Status InferExpand() {
    OptShape target = ShapeFromValues(1);
    OptShape out;
    SLIM_RETURN_IF_ERROR(Broadcast({InShape(0), target}, &out));
    Set(0, InType(0), out);
    return Status::Ok();
  }

  Status InferRange() {
    std::optional<std::vector<int64_t>> start = InLiterals(0), limit = InLiterals(1), delta = InLiterals(2);
    Dim len;
    if (start && limit && delta && start->size() == 1 && limit->size() == 1 && delta->size() == 1 && (*delta)[0] != 0) {
      const int64_t d = (*delta)[0];
      const int64_t span = (*limit)[0] - (*start)[0];
      len = Dim(std::max<int64_t>(0, d > 0 ? (span + d - 1) / d : (span + d + 1) / d));
    } else if (start && delta && start->size() == 1 && delta->size() == 1 && (*start)[0] == 0 && (*delta)[0] == 1) {
      // Range(0, n, 1) has n elements, n possibly a symbol.
      if (const Values* l = InValues(1); l && l->size() == 1) len = (*l)[0];
    }
    if (!len.is_static() && len.symbol.empty()) len = Fresh();
    Set(0, InType(0), Shape{len});
    return Status::Ok();
  }

  Status InferConstantOfShape() {
    DType dt = DType::kFloat32;
    if (node_->HasAttr("value")) dt = node_->attrs.at("value").t.dtype();
    OptShape shape = ShapeFromValues(0);
    Set(0, dt, shape);
    // Filled shape vectors (ones to guard Expand targets) become values.
    if (shape && shape->size() == 1 && (*shape)[0].is_static() && (*shape)[0].value <= kMaxTrackedElements &&
        IsIntType(dt)) {
      const Tensor& fill = node_->attrs.at("value").t;
      SetValues(0, Values(static_cast<size_t>((*shape)[0].value), Literal(fill.numel() > 0 ? fill.IntAt(0) : 0)));
    }
    return Status::Ok();
  }

  Status InferConvPool() {
    const std::string& op = node_->op_type;
    OptShape x = InShape(0);
    const bool conv = op == "Conv";
    OptShape w = conv ? InShape(1) : std::nullopt;
    if (!x || x->size() < 3 || (conv && (!w || w->size() != x->size()))) {
      for (size_t i = 0; i < node_->outputs.size(); ++i) Set(i, i == 0 ? InType(0) : DType::kInt64, std::nullopt);
      return Status::Ok();
    }
    const size_t spatial = x->size() - 2;
    std::vector<int64_t> kernel = node_->GetInts("kernel_shape");
    if (kernel.empty() && conv) {
      for (size_t k = 0; k < spatial; ++k) kernel.push_back((*w)[k + 2].is_static() ? (*w)[k + 2].value : -1);
    }
    if (kernel.size() != spatial) return Error("kernel_shape has " + std::to_string(kernel.size()) + " dims for " + std::to_string(spatial) + " spatial dims");
    std::vector<int64_t> strides = node_->GetInts("strides", std::vector<int64_t>(spatial, 1));
    std::vector<int64_t> dil = node_->GetInts("dilations", std::vector<int64_t>(spatial, 1));
    std::vector<int64_t> pads = node_->GetInts("pads", std::vector<int64_t>(2 * spatial, 0));
    if (strides.size() != spatial || dil.size() != spatial || pads.size() != 2 * spatial)
      return Error("strides/dilations/pads do not match the spatial rank");
    const std::string auto_pad = node_->GetString("auto_pad", "NOTSET");
    const bool ceil_mode = node_->GetInt("ceil_mode", 0) != 0;
    Shape out{(*x)[0], conv ? (*w)[0] : (*x)[1]};
    int64_t w_channels = 0;
    if (conv && (*x)[1].is_static() && (*w)[1].is_static() &&
        (!CheckedMul((*w)[1].value, node_->GetInt("group", 1), &w_channels) || (*x)[1].value != w_channels))
      return Error("input channels " + std::to_string((*x)[1].value) + " != W channels * group");
    for (size_t k = 0; k < spatial; ++k) {
      const Dim& in = (*x)[k + 2];
      if (!in.is_static() || kernel[k] < 0 || strides[k] <= 0) { out.push_back(Dim()); continue; }
      // In 128 bits: every term is an int64 from the file.
      using Wide = __int128;
      const Wide eff = Wide{dil[k]} * (Wide{kernel[k]} - 1) + 1;
      Wide len = 0;
      if (auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER") {
        len = (Wide{in.value} + strides[k] - 1) / strides[k];
      } else {
        const Wide padded =
            Wide{in.value} + (auto_pad == "VALID" ? 0 : Wide{pads[k]} + Wide{pads[k + spatial]}) - eff;
        if (padded < 0) return Error("kernel larger than padded input on spatial axis " + std::to_string(k));
        len = (ceil_mode ? (padded + strides[k] - 1) / strides[k] : padded / strides[k]) + 1;
      }
      if (len > std::numeric_limits<int64_t>::max()) return Error("output size overflows on spatial axis " + std::to_string(k));
      out.push_back(Dim(static_cast<int64_t>(len)));
    }
    Set(0, InType(0), out);
    Set(1, DType::kInt64, out);  // MaxPool Indices
    return Status::Ok();
  }

  Status InferGlobalPool() {
    OptShape x = InShape(0);
    if (x && x->size() >= 2) {
      for (size_t k = 2; k < x->size(); ++k) (*x)[k] = Dim(1);
    }
    Set(0, InType(0), x);
    return Status::Ok();
  }

  Status InferFlatten() {
    OptShape x = InShape(0);
    if (!x) { Set(0, InType(0), std::nullopt); return Status::Ok(); }
    int64_t axis = node_->GetInt("axis", 1);
    if (axis < 0) axis += Rank(*x);
    if (axis < 0 || axis > Rank(*x)) return Error("axis out of range");
    auto product = [](Shape::const_iterator b, Shape::const_iterator e) {
      if (e - b == 1) return *b;
      int64_t p = 1;
      for (auto it = b; it != e; ++it) {
        if (!it->is_static() || !CheckedMul(p, it->value, &p)) return Dim();
      }
      return Dim(p);
    };
    Set(0, InType(0), Shape{product(x->begin(), x->begin() + axis), product(x->begin() + axis, x->end())});
    return Status::Ok();
  }

  static constexpr const char* kNegative = "<negative>";

  Graph& g_;
  const Node* node_ = nullptr;
  std::vector<ValueInfo> outs_;
  std::unordered_map<std::string, ValueInfo> known_;
  std::unordered_map<std::string, Values> values_;
  int fresh_ = 0;
};

}  // namespace

Expected<ShapeInferenceStats> InferShapes(Graph& graph) {
  return Inferrer(graph).Run();
}

}  // namespace slim
