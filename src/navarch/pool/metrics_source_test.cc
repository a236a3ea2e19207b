#include "navarch/pool/metrics_source.h"

#include <httplib.h>
#include <signal.h>

#include <atomic>
#include <cmath>
#include <limits>
#include <map>
#include <sstream>
#include <thread>

#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "navarch/net/testing/test_http_server.h"

namespace navarch {
namespace {

using ::testing::HasSubstr;

TEST(ParseMetricsJsonTest, ReadsEveryKnownKey) {
  auto m = ParseMetricsJson(
      R"({"pending_jobs": 4, "queue_depth": 37, "utilization": 81.5, "x": 1})");
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->pending_jobs, 4);
  EXPECT_EQ(m->queue_depth, 37);
  EXPECT_DOUBLE_EQ(*m->utilization, 81.5);
  auto only = ParseMetricsJson(R"({"queue_depth": 0})");
  ASSERT_TRUE(only.ok());
  EXPECT_EQ(only->queue_depth, 0);
  EXPECT_FALSE(only->pending_jobs.has_value());
  EXPECT_FALSE(only->utilization.has_value());
}

TEST(ParseMetricsJsonTest, RejectsWhatItCannotTrust) {
  for (const char* bad :
       {"", "[]", "{}", R"({"other": 1})", R"({"queue_depth": -1})",
        R"({"queue_depth": 1.5})", R"({"queue_depth": "12"})",
        R"({"utilization": 101})", R"({"utilization": -3})",
        R"({"queue_depth": 3, "pending_jobs": null})", "not json"}) {
    EXPECT_EQ(ParseMetricsJson(bad).status().code(),
              absl::StatusCode::kInvalidArgument)
        << bad;
  }
}

TEST(ParsePrometheusValueTest, ScalarAndSingleSampleVector) {
  auto s = ParsePrometheusValue(
      R"({"status":"success","data":{"resultType":"scalar","result":[1700000000.1,"42"]}})");
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(*s, 42);
  auto v = ParsePrometheusValue(
      R"({"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1700000000,"12.5"]}]}})");
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(*v, 12.5);
}

TEST(ParsePrometheusValueTest, ExplainsUnusableAnswers) {
  auto empty = ParsePrometheusValue(
      R"({"status":"success","data":{"resultType":"vector","result":[]}})");
  EXPECT_THAT(empty.status().message(), HasSubstr("no series"));
  auto many = ParsePrometheusValue(
      R"({"status":"success","data":{"resultType":"vector","result":[{"value":[1,"1"]},{"value":[1,"2"]}]}})");
  EXPECT_THAT(many.status().message(), HasSubstr("returned 2 series"));
  auto err = ParsePrometheusValue(
      R"({"status":"error","errorType":"bad_data","error":"parse error at char 4"})");
  EXPECT_THAT(err.status().message(), HasSubstr("bad_data: parse error"));
  auto nan = ParsePrometheusValue(
      R"({"status":"success","data":{"resultType":"scalar","result":[1,"NaN"]}})");
  EXPECT_FALSE(nan.ok());
  auto matrix = ParsePrometheusValue(
      R"({"status":"success","data":{"resultType":"matrix","result":[]}})");
  EXPECT_FALSE(matrix.ok());
}

class SourceServer : public ::testing::Test {
 protected:
  void SetUp() override {
    http_.server().Get(
        "/queue", [this](const httplib::Request& req, httplib::Response& res) {
          absl::MutexLock lock(&mu_);
          auth_ = req.get_header_value("Authorization");
          res.status = status_;
          res.set_content(body_, "application/json");
        });
    http_.server().Get("/api/v1/query", [this](const httplib::Request& req,
                                               httplib::Response& res) {
      absl::MutexLock lock(&mu_);
      queries_.push_back(req.get_param_value("query"));
      const std::string q = req.get_param_value("query");
      auto it = prom_values_.find(q);
      const std::string v = it != prom_values_.end() ? it->second
                            : q == "depth"           ? "37"
                            : q == "util"            ? "64.2"
                                                     : "5";
      res.set_content(
          std::string(
              R"({"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,")") +
              v + R"("]}]}})",
          "application/json");
    });
    http_.Start();
  }
  std::string Url(const std::string& p) { return http_.Url(p); }
  absl::Mutex mu_;
  int status_ = 200;
  std::string body_ = R"({"pending_jobs": 3, "queue_depth": 25})";
  std::string auth_;
  std::vector<std::string> queries_;
  std::map<std::string, std::string> prom_values_;  // query -> its value
  // Last: stopped first, before what its handlers use.
  testing::TestHttpServer http_;
};

TEST_F(SourceServer, HttpJson) {
  MetricsSourceConfig c;
  c.type = MetricsSourceType::kHttpJson;
  c.url = Url("/queue");
  c.headers["Authorization"] = "Bearer q";
  auto src = MakeMetricsSource(c, RealClock::Default());
  ASSERT_NE(src, nullptr);
  EXPECT_EQ(src->name(), "http_json");
  auto m = src->Fetch();
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->queue_depth, 25);
  EXPECT_EQ(m->pending_jobs, 3);
  {
    absl::MutexLock lock(&mu_);
    EXPECT_EQ(auth_, "Bearer q");
    status_ = 500;
    body_ = "boom";
  }
  auto failed = src->Fetch();
  EXPECT_EQ(failed.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(failed.status().message(), HasSubstr("returned 500: boom"));
  {
    absl::MutexLock lock(&mu_);
    status_ = 200;
    body_ = R"({"queue_depth": "many"})";
  }
  EXPECT_EQ(src->Fetch().status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(SourceServer, Prometheus) {
  MetricsSourceConfig c;
  c.type = MetricsSourceType::kPrometheus;
  c.url = Url("/");  // A trailing slash is fine.
  c.queue_depth_query = "depth";
  c.utilization_query = "util";
  auto m = MakeMetricsSource(c, RealClock::Default())->Fetch();
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->queue_depth, 37);
  EXPECT_DOUBLE_EQ(*m->utilization, 64.2);
  EXPECT_FALSE(m->pending_jobs.has_value());
  absl::MutexLock lock(&mu_);
  EXPECT_THAT(queries_, ::testing::ElementsAre("depth", "util"));
}

// The Prometheus source cast a query's value to int: a huge value
// overflowed, a negative one became 0 (and the pool shrank to min_nodes), a
// utilisation above 100 was clamped. Now each fails the fetch, so the pool
// holds.
TEST_F(SourceServer, PrometheusValuesOutOfRangeFailTheFetch) {
  MetricsSourceConfig c;
  c.type = MetricsSourceType::kPrometheus;
  c.url = Url("");
  c.queue_depth_query = "q";
  auto src = MakeMetricsSource(c, RealClock::Default());
  for (const char* bad : {"1e12", "3000000000", "-5", "-0.4"}) {
    {
      absl::MutexLock lock(&mu_);
      prom_values_["q"] = bad;
    }
    auto m = src->Fetch();
    EXPECT_FALSE(m.ok()) << bad << " gave " << m->queue_depth.value_or(-1);
    EXPECT_THAT(m.status().message(), HasSubstr("'queue_depth' must be"))
        << bad;
  }
  c.queue_depth_query.clear();
  c.utilization_query = "u";
  for (const char* bad : {"150", "-1"}) {
    {
      absl::MutexLock lock(&mu_);
      prom_values_["u"] = bad;
    }
    EXPECT_EQ(
        MakeMetricsSource(c, RealClock::Default())->Fetch().status().code(),
        absl::StatusCode::kInvalidArgument)
        << bad;
  }
}

// PromQL gives fractions (avg, rate): counts round to the nearest integer,
// halves up; the bound itself is accepted.
TEST_F(SourceServer, PrometheusCountsRoundHalfUp) {
  MetricsSourceConfig c;
  c.type = MetricsSourceType::kPrometheus;
  c.url = Url("");
  c.queue_depth_query = "q";
  auto src = MakeMetricsSource(c, RealClock::Default());
  for (auto [value, want] :
       {std::pair{"2.5", 3}, std::pair{"2.49", 2}, std::pair{"0.5", 1},
        std::pair{"0.2", 0}, std::pair{"1000000000", kMaxExternalCount}}) {
    {
      absl::MutexLock lock(&mu_);
      prom_values_["q"] = value;
    }
    auto m = src->Fetch();
    ASSERT_TRUE(m.ok()) << value << ": " << m.status();
    EXPECT_EQ(m->queue_depth, want) << value;
  }
}

TEST_F(SourceServer, HttpJsonValuesPassTheSameCheck) {
  MetricsSourceConfig c;
  c.type = MetricsSourceType::kHttpJson;
  c.url = Url("/queue");
  auto src = MakeMetricsSource(c, RealClock::Default());
  for (const char* bad :
       {R"({"queue_depth": 3000000000})", R"({"pending_jobs": -2})",
        R"({"queue_depth": 1e300})", R"({"queue_depth": 2.5})",
        R"({"utilization": 100.5})"}) {
    {
      absl::MutexLock lock(&mu_);
      body_ = bad;
    }
    auto m = src->Fetch();
    EXPECT_EQ(m.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(m.status().message(), HasSubstr("GET " + c.url)) << bad;
  }
}

TEST(CheckExternalMetricsTest, OneCheckForEverySource) {
  RawMetrics raw;
  raw.queue_depth = std::nan("");
  EXPECT_FALSE(CheckExternalMetrics(raw, CountFractions::kRoundHalfUp).ok());
  raw.queue_depth = 1e9 + 1;
  EXPECT_FALSE(CheckExternalMetrics(raw, CountFractions::kRoundHalfUp).ok());
  raw.queue_depth = 7.4;
  EXPECT_FALSE(CheckExternalMetrics(raw, CountFractions::kReject).ok());
  auto m = CheckExternalMetrics(raw, CountFractions::kRoundHalfUp);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->queue_depth, 7);
  raw = RawMetrics{};
  raw.utilization = std::numeric_limits<double>::infinity();
  EXPECT_FALSE(CheckExternalMetrics(raw, CountFractions::kReject).ok());
}

// The pool manager records events; the source logs its own changes of
// state (not every failing fetch).
TEST_F(SourceServer, LogsChangesOfStateOnly) {
  FakeClock clock;
  std::ostringstream out;
  Logger log(std::make_shared<LogSink>(&out, LogFormat::kText, LogLevel::kInfo,
                                       &clock));
  MetricsSourceConfig c;
  c.type = MetricsSourceType::kHttpJson;
  c.url = Url("/queue");
  auto src = MakeMetricsSource(c, RealClock::Default(), log);
  ASSERT_TRUE(src->Fetch().ok());
  {
    absl::MutexLock lock(&mu_);
    status_ = 503;
    body_ = "down";
  }
  EXPECT_FALSE(src->Fetch().ok());
  EXPECT_FALSE(src->Fetch().ok());
  {
    absl::MutexLock lock(&mu_);
    status_ = 200;
    body_ = R"({"queue_depth": 1})";
  }
  EXPECT_TRUE(src->Fetch().ok());
  EXPECT_TRUE(src->Fetch().ok());
  const std::vector<std::string> lines =
      absl::StrSplit(out.str(), '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 2u) << out.str();
  EXPECT_THAT(lines[0], HasSubstr("metrics source failing"));
  EXPECT_THAT(lines[0], HasSubstr("returned 503: down"));
  EXPECT_THAT(lines[0], HasSubstr("http_json"));
  EXPECT_THAT(lines[1], HasSubstr("metrics source answers again"));
}

TEST(SourceFailureTest, AnUnreachableSourceSaysWhatFailed) {
  MetricsSourceConfig c;
  c.type = MetricsSourceType::kHttpJson;
  {
    // A port that was just free: nothing listens there.
    testing::TestHttpServer gone;
    gone.Start();
    c.url = gone.Url("/queue");
  }
  c.timeout = absl::Seconds(2);
  auto m = MakeMetricsSource(c, RealClock::Default())->Fetch();
  EXPECT_EQ(m.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(m.status().message(), HasSubstr("connection refused"));
}

TEST(CommandSourceTest, ValuesPassTheSameCheck) {
  MetricsSourceConfig c;
  c.type = MetricsSourceType::kCommand;
  c.command = {"/bin/sh", "-c", "echo '{\"queue_depth\": 5000000000}'"};
  auto m = MakeMetricsSource(c, RealClock::Default())->Fetch();
  EXPECT_EQ(m.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(m.status().message(), HasSubstr("'queue_depth' must be"));
}

TEST(CommandSourceTest, ReadsStdoutJson) {
  MetricsSourceConfig c;
  c.type = MetricsSourceType::kCommand;
  c.command = {"/bin/sh", "-c",
               "echo 'noise on stderr' >&2; echo '{\"queue_depth\": 12}'"};
  auto m = MakeMetricsSource(c, RealClock::Default())->Fetch();
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->queue_depth, 12);
}

TEST(CommandSourceTest, TheCommandRunsWithNoSignalBlocked) {
  // The control plane blocks SIGTERM, SIGINT and SIGHUP in every thread; a
  // command must not inherit that (it could not be stopped). SigBlk is the
  // child's blocked-signal mask in hex (grep itself, not a shell: dash
  // unblocks signals at start).
  sigset_t block, old;
  sigemptyset(&block);
  for (int sig : {SIGTERM, SIGINT, SIGHUP}) sigaddset(&block, sig);
  ASSERT_EQ(pthread_sigmask(SIG_BLOCK, &block, &old), 0);
  absl::StatusOr<CommandOutput> out =
      RunCommand({"grep", "SigBlk", "/proc/self/status"}, absl::Seconds(10),
                 RealClock::Default());
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_THAT(out->stdout_text, ::testing::MatchesRegex("SigBlk:\\s*0+\\s*"));
}

TEST(CommandSourceTest, FailuresSayWhy) {
  MetricsSourceConfig c;
  c.type = MetricsSourceType::kCommand;
  c.command = {"/bin/sh", "-c", "echo 'squeue: cannot connect' >&2; exit 3"};
  auto exit3 = MakeMetricsSource(c, RealClock::Default())->Fetch();
  EXPECT_EQ(exit3.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(exit3.status().message(),
              HasSubstr("exited with 3: squeue: cannot connect"));

  c.command = {"navarch-no-such-program-xyz"};
  EXPECT_EQ(MakeMetricsSource(c, RealClock::Default())->Fetch().status().code(),
            absl::StatusCode::kFailedPrecondition);

  c.command = {"/bin/sh", "-c", "echo oops"};
  EXPECT_EQ(MakeMetricsSource(c, RealClock::Default())->Fetch().status().code(),
            absl::StatusCode::kInvalidArgument);
}

// The deadline is on the injected clock: the command is killed once the
// FakeClock passes it, however long it would have run.
TEST(CommandSourceTest, KillsACommandPastItsTimeoutOnTheInjectedClock) {
  MetricsSourceConfig c;
  c.type = MetricsSourceType::kCommand;
  c.command = {"/bin/sh", "-c", "sleep 30"};
  c.timeout = absl::Seconds(10);
  FakeClock clock;
  std::atomic<bool> done{false};
  absl::StatusOr<ExternalMetrics> m;
  std::thread fetch([&] {
    m = MakeMetricsSource(c, clock)->Fetch();
    done = true;
  });
  while (!done) {
    clock.Advance(absl::Seconds(1));
    std::this_thread::yield();
  }
  fetch.join();
  EXPECT_EQ(m.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(m.status().message(), HasSubstr("ran past its timeout of 10s"));
}

TEST(CommandSourceTest, FleetIsNoSource) {
  EXPECT_EQ(MakeMetricsSource(MetricsSourceConfig{}, RealClock::Default()),
            nullptr);
}

}  // namespace
}  // namespace navarch
