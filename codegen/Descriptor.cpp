//===- Descriptor.cpp - The model descriptor the runtime reads ------------===//

#include "codegen/Descriptor.h"
#include "codegen/Passes.h"
#include "mass/vocabulary.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "llvm/Support/JSON.h"

using namespace mlir;
namespace abi = mass::abi;

namespace {

llvm::json::Value toJson(Attribute a) {
  if (auto s = dyn_cast<StringAttr>(a))
    return s.getValue().str();
  if (auto f = dyn_cast<FloatAttr>(a))
    return f.getValueAsDouble();
  if (auto b = dyn_cast<BoolAttr>(a))
    return b.getValue();
  if (auto i = dyn_cast<IntegerAttr>(a))
    return i.getInt();
  if (auto arr = dyn_cast<ArrayAttr>(a)) {
    llvm::json::Array out;
    for (Attribute e : arr)
      out.push_back(toJson(e));
    return out;
  }
  if (auto dict = dyn_cast<DictionaryAttr>(a)) {
    llvm::json::Object out;
    for (NamedAttribute n : dict)
      out[n.getName().getValue()] = toJson(n.getValue());
    return out;
  }
  return nullptr;
}

llvm::json::Object describeValue(Type type, DictionaryAttr attrs) {
  auto t = cast<RankedTensorType>(type);
  llvm::json::Array shape;
  for (int64_t d : t.getShape())
    shape.push_back(ShapedType::isDynamic(d) ? -1 : d);
  llvm::json::Object o{
      {abi::key::kDtype, t.getElementType().isF32() ? "f32" : "i32"},
      {abi::key::kShape, std::move(shape)}};
  for (NamedAttribute n : attrs ? attrs : DictionaryAttr()) {
    StringRef key = n.getName().getValue();
    if (!key.consume_front("mass."))
      continue;
    if (key == abi::key::kInit || key == abi::key::kInitScale ||
        key == abi::key::kKind || key == abi::key::kIdBound ||
        key == abi::key::kTargetMin || key == abi::key::kTargetMax)
      o[key] = toJson(n.getValue());
    else {
      o[abi::key::kRole] = key.str();
      o[abi::key::kName] = toJson(n.getValue());
    }
  }
  return o;
}

llvm::json::Object describeEntry(func::FuncOp f) {
  llvm::json::Array args, results;
  for (unsigned i = 0; i < f.getNumArguments(); ++i)
    args.push_back(describeValue(f.getArgumentTypes()[i], f.getArgAttrDict(i)));
  for (unsigned i = 0; i < f.getNumResults(); ++i)
    results.push_back(
        describeValue(f.getResultTypes()[i], f.getResultAttrDict(i)));
  return llvm::json::Object{{abi::key::kArgs, std::move(args)},
                            {abi::key::kResults, std::move(results)}};
}

} // namespace

std::string mass::buildDescriptor(ModuleOp module) {
  llvm::json::Object root;
  root[abi::key::kVersion] = 1;
  if (auto name = module->getAttrOfType<StringAttr>("mass.model"))
    root[abi::key::kModel] = name.getValue().str();
  if (auto tasks = module->getAttr("mass.tasks"))
    root[abi::key::kTasks] = toJson(tasks);
  if (auto train = module->getAttr("mass.train"))
    root[abi::key::kTrain] = toJson(train);
  llvm::json::Object entries;
  for (StringRef name : abi::kEntries)
    if (auto f = module.lookupSymbol<func::FuncOp>(name))
      entries[name] = describeEntry(f);
  if (auto optimizer = module->getAttr(abi::kOptimizerAttr))
    root[StringRef(abi::kOptimizer)] = toJson(optimizer);
  root[abi::key::kEntries] = std::move(entries);
  std::string out;
  llvm::raw_string_ostream os(out);
  os << llvm::json::Value(std::move(root));
  return out;
}

std::string mass::addCodegenPlans(const std::string &descriptor,
                                  ModuleOp module, bool cuda) {
  auto plans = module->getAttrOfType<DictionaryAttr>("mass.arena");
  llvm::Expected<llvm::json::Value> root = llvm::json::parse(descriptor);
  if (!root) {
    llvm::consumeError(root.takeError());
    return descriptor;
  }
  llvm::json::Object *entries =
      root->getAsObject()->getObject(abi::key::kEntries);
  for (NamedAttribute plan :
       plans ? plans.getValue() : ArrayRef<NamedAttribute>{}) {
    llvm::json::Object *entry = entries->getObject(plan.getName());
    auto sizes = dyn_cast<DenseI64ArrayAttr>(plan.getValue());
    if (!entry || !sizes || sizes.size() != 2)
      continue;
    (*entry)[abi::key::kArena] = llvm::json::Object{
        {abi::key::kBytes, sizes[0]}, {abi::key::kBytesPerSample, sizes[1]}};
  }
  auto inPlace = module->getAttrOfType<ArrayAttr>("mass.in_place");
  for (Attribute name : inPlace ? inPlace.getValue() : ArrayRef<Attribute>{})
    if (auto s = dyn_cast<StringAttr>(name))
      if (llvm::json::Object *entry = entries->getObject(s.getValue()))
        (*entry)[abi::key::kInPlace] = true;
  auto ready = module->getAttrOfType<DictionaryAttr>(mass::kGradReadyAttr);
  for (NamedAttribute order :
       ready ? ready.getValue() : ArrayRef<NamedAttribute>{}) {
    llvm::json::Object *entry = entries->getObject(order.getName());
    auto values = dyn_cast<DenseI64ArrayAttr>(order.getValue());
    if (!entry || !values)
      continue;
    llvm::json::Array list;
    for (int64_t v : values.asArrayRef())
      list.push_back(v);
    (*entry)[abi::key::kGradReady] = std::move(list);
  }
  if (cuda)
    (*root->getAsObject())[abi::key::kTarget] = std::string(abi::kTargetCuda);
  std::string out;
  llvm::raw_string_ostream os(out);
  os << *root;
  return out;
}
