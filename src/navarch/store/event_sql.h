// ListEvents as SQL, shared by the SQL backends (SQLite, PostgreSQL), which
// differ only in how a parameter is written.
#ifndef NAVARCH_STORE_EVENT_SQL_H_
#define NAVARCH_STORE_EVENT_SQL_H_

#include <cstdint>
#include <functional>
#include <string>
#include <variant>
#include <vector>

#include "navarch/store/store.h"

namespace navarch {

// A query over the `events` table (id, time_ns, kind, node_id, pool,
// record) selecting `id, record`, and its parameters in order.
struct EventSql {
  std::string sql;
  std::vector<std::variant<int64_t, std::string>> params;
};

// How the backend writes parameter `index` (1-based) of the given kind:
// "?" for SQLite, "$3::int8" for PostgreSQL.
using ParamWriter = std::function<std::string(int index, bool is_int)>;

// Kind patterns become index ranges: "node.*" is kind >= 'node.' AND
// kind < 'node/' (bytewise order, which the kind column must use). The
// query asks for one row more than `limit`, which tells whether another page
// exists. `query` must be valid (ValidateQuery).
EventSql BuildEventSql(const EventQuery& query, const ParamWriter& param);

}  // namespace navarch

#endif  // NAVARCH_STORE_EVENT_SQL_H_
