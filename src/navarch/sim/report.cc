#include "navarch/sim/report.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/strip.h"
#include "navarch/base/duration.h"

namespace navarch::sim {
namespace {

std::string Esc(const std::string& s) {
  return absl::StrReplaceAll(
      s, {{"&", "&amp;"}, {"<", "&lt;"}, {">", "&gt;"}, {"\"", "&quot;"}});
}

std::string Num(double v) {
  if (std::fabs(v - std::round(v)) < 1e-9) return absl::StrCat(std::llround(v));
  return absl::StrFormat("%.2f", v);
}

struct Series {
  std::string name;
  std::string color;
  std::vector<double> ys;
};

constexpr int kW = 760, kH = 240, kL = 56, kR = 16, kT = 28, kB = 36;
// Line charts put their legend on rows of its own under the title (a long
// title ran into a legend beside it), so their plot starts lower.
constexpr int kLegendRow = 18;

// A step for about four axis ticks: 1, 2 or 5 times a power of ten, at least
// `min`. Counts and whole seconds take min 1, so two ticks never round to the
// same label (a 0..2 axis used to read 0 1 1 2 2).
double NiceStep(double range, double min) {
  double raw = range / 4;
  if (raw <= min) return min;
  double p = std::pow(10, std::floor(std::log10(raw)));
  double f = raw / p;
  double nice = f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10;
  return std::max(min, nice * p);
}

// The legend's boxes, left to right, wrapping to a new row where the chart
// ends: {x, row} for each series.
std::vector<std::pair<int, int>> LegendLayout(
    const std::vector<Series>& series) {
  std::vector<std::pair<int, int>> at;
  int x = kL, row = 0;
  for (const Series& s : series) {
    int w = 24 + 7 * static_cast<int>(s.name.size());
    if (x > kL && x + w > kW - kR) {
      x = kL;
      ++row;
    }
    at.push_back({x, row});
    x += w;
  }
  return at;
}

// The grid lines and tick labels of both axes.
void Axes(std::string& svg, double xmax, double xstep, double ymax,
          double ystep, const std::function<double(double)>& px,
          const std::function<double(double)>& py) {
  for (double y = 0; y <= ymax + ystep / 2; y += ystep) {
    absl::StrAppendFormat(&svg,
                          "<line x1='%d' x2='%d' y1='%.1f' y2='%.1f' "
                          "class='grid'/><text x='%d' y='%.1f' "
                          "class='axis' text-anchor='end'>%s</text>",
                          kL, kW - kR, py(y), py(y), kL - 6, py(y) + 4, Num(y));
  }
  for (double x = 0; x <= xmax + xstep / 2; x += xstep) {
    absl::StrAppendFormat(&svg,
                          "<text x='%.1f' y='%d' class='axis' "
                          "text-anchor='middle'>%s</text>",
                          px(x), kH - kB + 16, Num(x));
  }
}

// A line chart over a shared x axis, as inline SVG.
std::string LineChart(const std::string& title, const std::vector<double>& xs,
                      const std::vector<Series>& series,
                      const std::string& x_label) {
  double xmax = xs.empty() ? 0 : std::max(xs.back(), 0.0);
  double ymax = 0;
  for (const Series& s : series) {
    for (double y : s.ys) ymax = std::max(ymax, y);
  }
  const double xstep = NiceStep(xmax, 1), ystep = NiceStep(ymax, 1);
  xmax = std::max(1.0, std::ceil(xmax / xstep - 1e-9)) * xstep;
  ymax = std::max(1.0, std::ceil(ymax / ystep - 1e-9)) * ystep;
  const std::vector<std::pair<int, int>> legend = LegendLayout(series);
  const int rows = legend.empty() ? 0 : legend.back().second + 1;
  const int top = kT + kLegendRow * rows, height = kH + kLegendRow * rows;
  auto px = [&](double x) { return kL + (kW - kL - kR) * x / xmax; };
  auto py = [&](double y) {
    return height - kB - (height - top - kB) * y / ymax;
  };
  std::string svg = absl::StrFormat(
      "<svg viewBox='0 0 %d %d' class='chart' role='img' aria-label='%s'>"
      "<text x='%d' y='18' class='title'>%s</text>",
      kW, height, Esc(title), kL, Esc(title));
  Axes(svg, xmax, xstep, ymax, ystep, px, py);
  absl::StrAppendFormat(&svg,
                        "<text x='%d' y='%d' class='axis' "
                        "text-anchor='end'>%s</text>",
                        kW - kR, height - 4, Esc(x_label));
  for (size_t k = 0; k < series.size(); ++k) {
    const Series& s = series[k];
    std::string pts;
    for (size_t i = 0; i < xs.size() && i < s.ys.size(); ++i) {
      absl::StrAppendFormat(&pts, "%.1f,%.1f ", px(xs[i]), py(s.ys[i]));
    }
    absl::StrAppendFormat(&svg,
                          "<polyline fill='none' stroke='%s' "
                          "stroke-width='1.6' points='%s'/>",
                          s.color, pts);
    const auto [x, row] = legend[k];
    const int y = 27 + kLegendRow * row;  // under the title's baseline (18)
    absl::StrAppendFormat(&svg,
                          "<rect x='%d' y='%d' width='10' height='10' "
                          "fill='%s'/><text x='%d' y='%d' "
                          "class='legend'>%s</text>",
                          x, y, s.color, x + 14, y + 9, Esc(s.name));
  }
  svg += "</svg>";
  return svg;
}

// Horizontal bars, largest first.
std::string BarChart(const std::string& title,
                     std::vector<std::pair<std::string, double>> bars,
                     const std::string& color) {
  std::stable_sort(bars.begin(), bars.end(), [](const auto& a, const auto& b) {
    return a.second > b.second;
  });
  if (bars.size() > 20) bars.resize(20);
  const int row = 20;
  const int h = kT + row * std::max<int>(bars.size(), 1) + 10;
  double max = 1;
  for (const auto& [k, v] : bars) max = std::max(max, v);
  std::string svg = absl::StrFormat(
      "<svg viewBox='0 0 %d %d' class='chart' role='img' aria-label='%s'>"
      "<text x='8' y='18' class='title'>%s</text>",
      kW, h, Esc(title), Esc(title));
  if (bars.empty()) {
    absl::StrAppendFormat(&svg, "<text x='8' y='%d' class='axis'>none</text>",
                          kT + 14);
  }
  const int label_w = 260;
  for (size_t i = 0; i < bars.size(); ++i) {
    int y = kT + static_cast<int>(i) * row;
    double w = (kW - label_w - 70) * bars[i].second / max;
    absl::StrAppendFormat(
        &svg,
        "<text x='%d' y='%d' class='axis' text-anchor='end'>%s</text>"
        "<rect x='%d' y='%d' width='%.1f' height='%d' fill='%s'/>"
        "<text x='%.1f' y='%d' class='axis'>%s</text>",
        label_w - 6, y + 13, Esc(bars[i].first), label_w, y + 2, w, row - 5,
        color, label_w + w + 6, y + 13, Num(bars[i].second));
  }
  svg += "</svg>";
  return svg;
}

std::string Card(const std::string& label, const std::string& value) {
  return absl::StrCat("<div class='card'><div class='v'>", Esc(value),
                      "</div><div class='l'>", Esc(label), "</div></div>");
}

std::string Str(const nlohmann::json& j) {
  if (j.is_string()) return j.get<std::string>();
  if (j.is_number()) return Num(j.get<double>());
  return j.dump();
}

constexpr char kStyle[] = R"(<style>
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#1d2330;background:#f7f8fa}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px}
.sub{color:#5b6475}.cards{display:flex;flex-wrap:wrap;gap:10px;margin:16px 0}
.card{background:#fff;border:1px solid #dde1e8;border-radius:6px;padding:10px 14px;min-width:120px}
.card .v{font-size:20px;font-weight:600}.card .l{color:#5b6475;font-size:12px}
.chart{background:#fff;border:1px solid #dde1e8;border-radius:6px;width:100%;max-width:900px;display:block;margin:8px 0}
.chart .title{font-weight:600;font-size:13px}.chart .axis{font-size:11px;fill:#5b6475}
.chart .legend{font-size:11px}.chart .grid{stroke:#eceef2}
table{border-collapse:collapse;background:#fff;margin:8px 0}
td,th{border:1px solid #dde1e8;padding:4px 8px;text-align:left;font-size:13px}
th{background:#eef0f4}.pass{color:#137333;font-weight:600}.fail{color:#b3261e;font-weight:600}
details{margin:2px 0}summary{cursor:pointer}code{font-size:12px}
</style></head><body>)";

std::string Head(const nlohmann::json& s) {
  std::string h = "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>";
  absl::StrAppend(&h, "<title>", Esc(Str(s.value("name", nlohmann::json("")))),
                  " — Navarch simulator</title>");
  h += kStyle;
  absl::StrAppend(&h, "<h1>", Esc(Str(s.value("name", nlohmann::json("")))),
                  "</h1><div class='sub'>", Esc(Str(s["mode"])), " run, seed ",
                  Esc(Str(s["seed"])), ", ", Esc(Str(s["simulated_seconds"])),
                  " simulated seconds</div>");
  return h;
}

std::string Cards(const nlohmann::json& s) {
  const nlohmann::json& hl = s["healthy"];
  std::string h = "<div class='cards'>";
  h += Card("nodes started", Str(s["nodes_started"]));
  h += Card("failed to start", Str(s["nodes_failed_to_start"]));
  h += Card("failures injected", Str(s["failures_injected"]));
  h += Card("cascading", Str(s["cascading_failures"]));
  h += Card("correlated", Str(s["correlated_failures"]));
  h += Card("outages", Str(s["outages"]));
  h += Card("recoveries", Str(s["recoveries"]));
  h += Card("replacements", Str(s["replacements"]));
  h += Card("min healthy %", Str(hl["min_percent"]));
  h += Card("avg healthy %", Str(hl["avg_percent"]));
  const nlohmann::json& ttd = s["time_to_detect"];
  if (ttd.value("count", 0) > 0) {
    h += Card("time to detect p95 (s)", Str(ttd["p95_seconds"]));
  }
  const nlohmann::json& ttr = s["time_to_replace"];
  if (ttr.value("count", 0) > 0) {
    h += Card("time to replace p95 (s)", Str(ttr["p95_seconds"]));
  }
  h += "</div>";
  return h;
}

std::string Assertions(const nlohmann::json& s) {
  std::string h = "<h2>Assertions</h2>";
  if (s["assertions"].empty()) {
    h += "<p class='sub'>none</p>";
  } else {
    h += "<table><tr><th></th><th>type</th><th>target</th><th>expected</th>"
         "<th>actual</th><th>where</th></tr>";
    for (const auto& a : s["assertions"]) {
      bool ok = a.value("passed", false);
      absl::StrAppend(
          &h, "<tr><td class='", ok ? "pass'>PASS" : "fail'>FAIL", "</td><td>",
          Esc(Str(a["type"])), "</td><td>", Esc(Str(a["target"])), "</td><td>",
          Esc(Str(a["expected"])), "</td><td>", Esc(Str(a["actual"])),
          "</td><td>", Esc(Str(a["source"])), "</td></tr>");
    }
    h += "</table>";
  }
  for (const auto& e : s["errors"]) {
    absl::StrAppend(&h, "<p class='fail'>", Esc(Str(e)), "</p>");
  }
  return h;
}

// What each simulated cloud answered (summary.providers, with `clouds:`).
std::string Providers(const nlohmann::json& s) {
  if (!s.contains("providers")) return "";
  std::string h =
      "<h2>Providers</h2><table><tr><th>provider</th><th>provision "
      "calls</th><th>provisioned</th><th>capacity errors</th><th>quota "
      "errors</th><th>other errors</th><th>call latency (s)</th></tr>";
  for (const auto& [name, p] : s["providers"].items()) {
    absl::StrAppend(&h, "<tr><td>", Esc(name), "</td><td>",
                    Str(p["provision_calls"]), "</td><td>",
                    Str(p["provisioned"]), "</td><td>",
                    Str(p["capacity_errors"]), "</td><td>",
                    Str(p["quota_errors"]), "</td><td>", Str(p["other_errors"]),
                    "</td><td>", Str(p["call_latency_seconds"]), "</td></tr>");
  }
  return h + "</table>";
}

// The fleet's states, the cumulative counts and the pool sizes over time.
std::string Timeline(const nlohmann::json& tl) {
  std::vector<double> xs;
  Series healthy{"healthy", "#1e8e3e", {}}, degraded{"degraded", "#f9ab00", {}},
      unhealthy{"unhealthy", "#d93025", {}},
      cordoned{"cordoned/draining", "#1a73e8", {}};
  Series failures{"failures", "#d93025", {}},
      recoveries{"recoveries", "#1e8e3e", {}},
      replacements{"replacements", "#1a73e8", {}};
  std::map<std::string, Series> pools;
  const char* palette[] = {"#1a73e8", "#e8710a", "#9334e6",
                           "#12b5cb", "#e52592", "#7cb342"};
  for (const auto& p : tl) {
    xs.push_back(p["t"].get<double>());
    healthy.ys.push_back(p["healthy"].get<double>());
    degraded.ys.push_back(p["degraded"].get<double>());
    unhealthy.ys.push_back(p["unhealthy"].get<double>());
    cordoned.ys.push_back(p["cordoned"].get<double>() +
                          p["draining"].get<double>());
    failures.ys.push_back(p["failures"].get<double>());
    recoveries.ys.push_back(p["recoveries"].get<double>());
    replacements.ys.push_back(p["replacements"].get<double>());
    if (!p.contains("pools")) continue;
    for (const auto& [name, n] : p["pools"].items()) {
      Series& ps = pools[name];
      if (ps.name.empty()) {
        ps.name = name;
        ps.color = palette[(pools.size() - 1) % 6];
      }
      ps.ys.push_back(n.get<double>());
    }
  }
  std::string h = "<h2>Fleet over time</h2>";
  h += LineChart("Nodes by state", xs, {healthy, degraded, unhealthy, cordoned},
                 "simulated seconds");
  h += LineChart("Failures, recoveries and replacements (cumulative)", xs,
                 {failures, recoveries, replacements}, "simulated seconds");
  if (!pools.empty()) {
    std::vector<Series> ps;
    for (auto& [n, p] : pools) ps.push_back(p);
    h += LineChart("Pool sizes (registered, live nodes)", xs, ps,
                   "simulated seconds");
  }
  return h;
}

std::string FailuresAndPolicy(const nlohmann::json& s,
                              const nlohmann::json& policy) {
  std::string h = "<h2>Failures</h2>";
  std::vector<std::pair<std::string, double>> by_type, by_xid, rules;
  for (const auto& [k, v] : s["failures_by_type"].items())
    by_type.push_back({k, v.get<double>()});
  for (const auto& [k, v] : s["failures_by_xid"].items())
    by_xid.push_back({absl::StrCat("XID ", k), v.get<double>()});
  h += BarChart("By type", by_type, "#d93025");
  h += BarChart("By XID code", by_xid, "#e8710a");
  h += "<h2>Health policy</h2>";
  for (const auto& r : policy["rules"]) {
    rules.push_back({absl::StrCat(Str(r["name"]), " → ", Str(r["result"])),
                     r["hits"].get<double>()});
  }
  h += BarChart("Rule hits (events each rule decided)", rules, "#9334e6");
  return h;
}

std::string NodeRow(const nlohmann::json& n) {
  std::string h;
  absl::StrAppend(
      &h, "<tr><td>", Esc(Str(n["node_id"])), "</td><td>",
      Esc(Str(n["provider"])), "</td><td>", Esc(Str(n["zone"])), "</td><td>",
      Esc(Str(n.value("pool", nlohmann::json("")))), "</td><td>",
      Esc(Str(n["status"])), "</td><td>", Esc(Str(n["health"])), "</td><td>",
      Str(n["failure_count"]), "</td><td>", Str(n["recovery_count"]),
      "</td><td><details><summary>", n["events"].size(), " events</summary>");
  for (const auto& e : n["events"]) {
    std::string extra;
    if (e.contains("failure_type"))
      absl::StrAppend(&extra, " ", Str(e["failure_type"]));
    if (e.contains("xid_code"))
      absl::StrAppend(&extra, " xid ", Str(e["xid_code"]));
    if (e.contains("policy_rule"))
      absl::StrAppend(&extra, " rule ", Str(e["policy_rule"]), " → ",
                      Str(e.value("rule_result", nlohmann::json(""))));
    absl::StrAppend(&h, "<div><code>", Str(e["t"]), "s</code> ",
                    Esc(Str(e["type"])), Esc(extra), ": ",
                    Esc(Str(e.value("message", nlohmann::json("")))), "</div>");
  }
  h += "</details></td></tr>";
  return h;
}

// Nodes: those with something to tell first, at most 500.
std::string Nodes(const nlohmann::json& nodes) {
  std::string h = "<h2>Nodes</h2>";
  std::vector<const nlohmann::json*> list;
  for (const auto& n : nodes) list.push_back(&n);
  std::stable_sort(list.begin(), list.end(),
                   [](const nlohmann::json* a, const nlohmann::json* b) {
                     return a->at("failure_count").get<int>() >
                            b->at("failure_count").get<int>();
                   });
  size_t shown = std::min<size_t>(list.size(), 500);
  absl::StrAppend(
      &h, "<p class='sub'>", list.size(), " nodes",
      shown < list.size()
          ? absl::StrCat("; the ", shown, " with the most failures are shown")
          : "",
      ". report.json has all of them.</p>");
  h += "<table><tr><th>node</th><th>provider</th><th>zone</th><th>pool</th>"
       "<th>status</th><th>health</th><th>failures</th><th>recoveries</th>"
       "<th>events</th></tr>";
  for (size_t i = 0; i < shown; ++i) h += NodeRow(*list[i]);
  h += "</table>";
  return h;
}

std::string Run(const nlohmann::json& run) {
  return absl::StrCat("<h2>Run</h2><p class='sub'>", Str(run["events"]),
                      " simulation events in ", Str(run["wall_seconds"]),
                      " s of wall time (", Str(run["events_per_second"]),
                      " events/s, ", Str(run["node_hours"]),
                      " node-hours simulated). "
                      "Generated by the Navarch simulator.</p>");
}

}  // namespace

std::string HumanDuration(absl::Duration d) {
  if (d <= absl::ZeroDuration()) return "0s";
  if (d < absl::Seconds(1)) {
    double ns = absl::ToDoubleNanoseconds(d);
    if (ns >= 1e6) return absl::StrFormat("%.3gms", ns / 1e6);
    if (ns >= 1e3) return absl::StrFormat("%.3gµs", ns / 1e3);
    return absl::StrFormat("%.3gns", ns);
  }
  // Tenths below an hour, whole seconds above; to the nearest.
  const absl::Duration unit =
      d < absl::Hours(1) ? absl::Milliseconds(100) : absl::Seconds(1);
  return FormatGoDuration(absl::Floor(d + unit / 2, unit));
}

std::string HumanCount(double v) {
  const char* units[] = {"", "k", "M", "G"};
  int u = 0;
  // Scale while three figures would round up to 1000 (999,999 is 1M).
  while (u < 3 && std::fabs(v) >= 999.5) {
    v /= 1000;
    ++u;
  }
  return absl::StrCat(absl::StrFormat("%.3g", v), units[u]);
}

std::string HumanPercent(double percent) {
  std::string s = absl::StrFormat("%.1f", percent);
  return absl::StrCat(absl::StripSuffix(s, ".0"), "%");
}

std::string SummaryText(const nlohmann::json& report, uint64_t seed) {
  const nlohmann::json& summary = report.at("summary");
  const nlohmann::json& run = report.at("run");
  auto seconds = [](const nlohmann::json& j) {
    return HumanDuration(absl::Seconds(j.get<double>()));
  };
  return absl::StrCat(
      "Simulated ", seconds(summary["simulated_seconds"]), " in ",
      seconds(run["wall_seconds"]), " (",
      HumanCount(run["events_per_second"].get<double>()), " events/s), seed ",
      seed, "\nNodes started ", summary["nodes_started"].dump(), ", failures ",
      summary["failures_injected"].dump(), ", recoveries ",
      summary["recoveries"].dump(), ", replacements ",
      summary["replacements"].dump(), ", min healthy ",
      HumanPercent(summary["healthy"]["min_percent"].get<double>()), "\n");
}

std::string RenderHtml(const nlohmann::json& report) {
  const nlohmann::json& s = report.at("summary");
  std::string h = Head(s);
  h += Cards(s);
  h += Assertions(s);
  h += Timeline(report.at("timeline"));
  h += FailuresAndPolicy(s, report["policy"]);
  h += Providers(s);
  h += Nodes(report["nodes"]);
  h += Run(report["run"]);
  h += "</body></html>\n";
  return h;
}

absl::Status WriteReports(const std::string& dir,
                          const nlohmann::json& report) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    return absl::InternalError(
        absl::StrCat("cannot create ", dir, ": ", ec.message()));
  }
  auto write = [&](const std::string& name,
                   const std::string& text) -> absl::Status {
    std::string path = (std::filesystem::path(dir) / name).string();
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << text;
    out.close();
    if (!out) return absl::InternalError(absl::StrCat("cannot write ", path));
    return absl::OkStatus();
  };
  absl::Status s = write("report.json", report.dump(2) + "\n");
  if (!s.ok()) return s;
  return write("report.html", RenderHtml(report));
}

}  // namespace navarch::sim
