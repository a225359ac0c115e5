//===- MassDialect.cpp - The mass dialect ---------------------------------===//

#include "dialects/Mass/MassDialect.h"
#include "dialects/Mass/MassOps.h"

using namespace mass;

#include "dialects/Mass/MassDialect.cpp.inc"

void MassDialect::initialize() {
  addOperations<
#define GET_OP_LIST
#include "dialects/Mass/MassOps.cpp.inc"
      >();
}
