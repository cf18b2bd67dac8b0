// The reports of a torchbricks-perf sweep: perf_analyzer's latency CSV (-f), the per-brick
// CSV (--brick-csv), a JSON summary (--json) and the text printed as each level ends.
// Pure functions of the results; thread-safe.
#ifndef TORCHBRICKS_CLIENTS_CPP_PERF_PERF_REPORT_H_
#define TORCHBRICKS_CLIENTS_CPP_PERF_PERF_REPORT_H_

#include <ostream>
#include <string>
#include <vector>

#include "clients/cpp/perf/level_measurement.h"
#include "clients/cpp/perf/perf_options.h"

namespace torchbricks::perf {

// perf_analyzer's CSV: a header ("Concurrency" or "Request Rate", then Inferences/Second,
// Client Send, Network+Server Send/Recv, Server Queue, Server Compute Input, Server
// Compute Infer, Server Compute Output, Client Recv, p50/p90/p95/p99 latency; times in
// whole microseconds) and one row per level in sweep order.
std::string LatencyCsv(LoadMode mode, const std::vector<LevelResult>& levels);

// One row per brick that ran, per level: the level, Version, Brick, Runs (executions over
// the whole level: batches, not requests) and Avg Compute (us).
std::string BrickCsv(LoadMode mode, const std::vector<LevelResult>& levels);

// The settings and every level's figures, client and server side, as one JSON document.
std::string JsonSummary(const PerfOptions& options, const std::vector<LevelResult>& levels);

// What is measured, printed before the first level.
void PrintSettings(std::ostream& out, const PerfOptions& options);

// One level's figures, its server-side split and its brick table.
void PrintLevel(std::ostream& out, const PerfOptions& options, const LevelResult& level);

}  // namespace torchbricks::perf

#endif  // TORCHBRICKS_CLIENTS_CPP_PERF_PERF_REPORT_H_
