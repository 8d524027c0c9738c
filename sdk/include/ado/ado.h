/* adonode SDK: the one header a plugin includes. */
#ifndef ADO_ADO_H
#define ADO_ADO_H

#include "ado/errors.h"
#include "ado/plugin.h"
#include "ado/schema.h"

#endif
