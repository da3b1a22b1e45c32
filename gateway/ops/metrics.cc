#include "gateway/ops/metrics.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace fhirgw::gateway {

enum class MetricsRegistry::Kind { kCounter, kGauge, kHistogram, kCallbackGauge };

// One labelled series. Exactly one pointer is set, matching the family's kind; it never changes
// after creation, so readers may use it once the registry's lock is released.
struct MetricsRegistry::Series {
  std::unique_ptr<Counter> counter;
  std::unique_ptr<Gauge> gauge;
  std::unique_ptr<Histogram> histogram;
};

struct MetricsRegistry::Family {
  // Returns a family without series (or labels); aborts when `name` is not a valid metric name.
  static std::unique_ptr<Family> Create(absl::string_view name, absl::string_view help, Kind kind);

  std::string name;
  std::string help;
  Kind kind;
  std::vector<std::string> label_names;
  std::vector<double> bounds;  // histograms only
  // Keyed by label values in `label_names` order; std::map keeps the rendering sorted and its
  // nodes (so the references handed out) stable.
  std::map<std::vector<std::string>, Series> series;
  std::function<double()> callback;  // callback gauges only
};

namespace {

// Reports a misuse of the registry by the calling code and aborts (see the header).
[[noreturn]] void Fatal(const std::string& message) {
  std::fprintf(stderr, "fhirgw: metrics: %s\n", message.c_str());
  std::abort();
}

const char* KindName(int kind) {
  static constexpr const char* kNames[] = {"counter", "gauge", "histogram", "gauge"};
  return kNames[kind];
}

bool IsAsciiLetter(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool IsAsciiDigit(char c) { return c >= '0' && c <= '9'; }

// Metric names match [a-zA-Z_:][a-zA-Z0-9_:]*.
bool IsValidMetricName(absl::string_view name) {
  if (name.empty() || IsAsciiDigit(name[0])) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return IsAsciiLetter(c) || IsAsciiDigit(c) || c == '_' || c == ':';
  });
}

// Label names match [a-zA-Z_][a-zA-Z0-9_]*; names starting with "__" are reserved by Prometheus.
bool IsValidLabelName(absl::string_view name) {
  if (name.empty() || IsAsciiDigit(name[0]) || absl::StartsWith(name, "__")) return false;
  return std::all_of(name.begin(), name.end(),
                     [](char c) { return IsAsciiLetter(c) || IsAsciiDigit(c) || c == '_'; });
}

// Returns the values of `labels` ordered as `names`, or nullopt unless `labels` has exactly
// those names.
std::optional<std::vector<std::string>> ValuesInOrder(const std::vector<std::string>& names,
                                                      const MetricLabels& labels) {
  if (labels.size() != names.size()) return std::nullopt;
  std::vector<std::string> values;
  values.reserve(names.size());
  for (size_t i = 0; i < names.size(); ++i) {
    // Callers almost always list labels in the family's order.
    if (labels[i].first == names[i]) {
      values.push_back(labels[i].second);
      continue;
    }
    auto it = std::find_if(labels.begin(), labels.end(),
                           [&](const auto& label) { return label.first == names[i]; });
    if (it == labels.end()) return std::nullopt;
    values.push_back(it->second);
  }
  return values;
}

std::string LabelNames(const MetricLabels& labels) {
  return absl::StrJoin(
      labels, ",", [](std::string* out, const auto& label) { absl::StrAppend(out, label.first); });
}

// Sorts `bounds` and drops duplicates, NaN and infinities.
std::vector<double> SanitizeBounds(std::vector<double> bounds) {
  bounds.erase(
      std::remove_if(bounds.begin(), bounds.end(), [](double b) { return !std::isfinite(b); }),
      bounds.end());
  std::sort(bounds.begin(), bounds.end());
  bounds.erase(std::unique(bounds.begin(), bounds.end()), bounds.end());
  return bounds;
}

// Formats a sample value or bound the way Prometheus parses it, with the fewest digits that read
// back exactly: integral values without a fraction or exponent.
std::string FormatValue(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  if (v == std::trunc(v) && std::fabs(v) < 1e15) {
    return absl::StrCat(static_cast<int64_t>(v));
  }
  char buf[64];
  // Plain notation where it stays short ("0.0005" and "1234567.125", not "5e-04" and
  // "1.234567125e+06"), the exponent form beyond.
  const double magnitude = std::fabs(v);
  auto result = magnitude >= 1e-4 && magnitude < 1e15
                    ? std::to_chars(buf, buf + sizeof(buf), v, std::chars_format::fixed)
                    : std::to_chars(buf, buf + sizeof(buf), v);
  return std::string(buf, result.ptr);
}

// Escapes a label value: backslash, double quote and newline.
void AppendEscapedLabelValue(std::string& out, absl::string_view value) {
  for (char c : value) {
    switch (c) {
      case '\\':
        out += "\\\\";
        break;
      case '"':
        out += "\\\"";
        break;
      case '\n':
        out += "\\n";
        break;
      default:
        out += c;
    }
  }
}

// Escapes HELP text: backslash and newline (quotes are literal there).
void AppendEscapedHelp(std::string& out, absl::string_view help) {
  for (char c : help) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
}

// Appends `{a="x",b="y"}` (plus `le` when given), or nothing when there are no labels.
void AppendLabels(std::string& out, const std::vector<std::string>& names,
                  const std::vector<std::string>& values, const std::string* le = nullptr) {
  if (names.empty() && le == nullptr) return;
  out += '{';
  for (size_t i = 0; i < names.size(); ++i) {
    if (i > 0) out += ',';
    absl::StrAppend(&out, names[i], "=\"");
    AppendEscapedLabelValue(out, values[i]);
    out += '"';
  }
  if (le != nullptr) {
    if (!names.empty()) out += ',';
    absl::StrAppend(&out, "le=\"", *le, "\"");
  }
  out += '}';
}

void AppendSample(std::string& out, absl::string_view name, const std::vector<std::string>& names,
                  const std::vector<std::string>& values, double value,
                  const std::string* le = nullptr) {
  out.append(name.data(), name.size());
  AppendLabels(out, names, values, le);
  absl::StrAppend(&out, " ", FormatValue(value), "\n");
}

}  // namespace

void Counter::Inc(double v) {
  if (!(v >= 0)) return;  // also drops NaN
  value_.fetch_add(v, std::memory_order_relaxed);
}

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(SanitizeBounds(std::move(bounds))),
      counts_(std::make_unique<std::atomic<uint64_t>[]>(bounds_.size() + 1)) {}

void Histogram::Observe(double v) {
  if (std::isnan(v)) return;
  const size_t bucket = std::lower_bound(bounds_.begin(), bounds_.end(), v) - bounds_.begin();
  counts_[bucket].fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(v, std::memory_order_relaxed);
}

std::vector<uint64_t> Histogram::CumulativeCounts() const {
  std::vector<uint64_t> cumulative(bounds_.size() + 1);
  uint64_t total = 0;
  for (size_t i = 0; i < cumulative.size(); ++i) {
    total += counts_[i].load(std::memory_order_relaxed);
    cumulative[i] = total;
  }
  return cumulative;
}

uint64_t Histogram::count() const { return CumulativeCounts().back(); }

std::unique_ptr<MetricsRegistry::Family> MetricsRegistry::Family::Create(absl::string_view name,
                                                                         absl::string_view help,
                                                                         Kind kind) {
  if (!IsValidMetricName(name)) {
    Fatal(absl::StrCat("invalid metric name \"", name, "\""));
  }
  auto family = std::make_unique<Family>();
  family->name = std::string(name);
  family->help = std::string(help);
  family->kind = kind;
  return family;
}

MetricsRegistry::MetricsRegistry() = default;
MetricsRegistry::~MetricsRegistry() = default;

const MetricsRegistry::Series& MetricsRegistry::GetSeries(absl::string_view name,
                                                          absl::string_view help, Kind kind,
                                                          const MetricLabels& labels,
                                                          std::vector<double> bounds) {
  // Fast path: the family and series exist (every call after the first for these labels).
  {
    absl::ReaderMutexLock lock(&mu_);
    auto family = families_.find(name);
    if (family != families_.end() && family->second->kind == kind) {
      if (auto values = ValuesInOrder(family->second->label_names, labels)) {
        auto series = family->second->series.find(*values);
        if (series != family->second->series.end()) return series->second;
      }
    }
  }

  absl::MutexLock lock(&mu_);
  auto [it, inserted] = families_.try_emplace(std::string(name));
  if (inserted) {
    std::unique_ptr<Family> family = Family::Create(name, help, kind);
    std::set<std::string, std::less<>> seen;
    for (const auto& [label, value] : labels) {
      if (!IsValidLabelName(label) || (kind == Kind::kHistogram && label == "le")) {
        Fatal(absl::StrCat("metric ", name, ": invalid label name \"", label, "\""));
      }
      if (!seen.insert(label).second) {
        Fatal(absl::StrCat("metric ", name, ": label \"", label, "\" given twice"));
      }
      family->label_names.push_back(label);
    }
    if (kind == Kind::kHistogram) family->bounds = SanitizeBounds(std::move(bounds));
    it->second = std::move(family);
  }
  Family& family = *it->second;
  if (family.kind != kind) {
    Fatal(absl::StrCat("metric ", name, " is a ", KindName(static_cast<int>(family.kind)),
                       ", not a ", KindName(static_cast<int>(kind))));
  }
  std::optional<std::vector<std::string>> values = ValuesInOrder(family.label_names, labels);
  if (!values.has_value()) {
    Fatal(absl::StrCat("metric ", name, " has labels {", absl::StrJoin(family.label_names, ","),
                       "}, not {", LabelNames(labels), "}"));
  }
  Series& series = family.series[*std::move(values)];
  if (series.counter == nullptr && series.gauge == nullptr && series.histogram == nullptr) {
    switch (kind) {
      case Kind::kCounter:
        series.counter = std::make_unique<Counter>();
        break;
      case Kind::kGauge:
        series.gauge = std::make_unique<Gauge>();
        break;
      case Kind::kHistogram:
        series.histogram = std::make_unique<Histogram>(family.bounds);
        break;
      case Kind::kCallbackGauge:
        break;  // not reached: callback gauges have no series
    }
  }
  return series;
}

Counter& MetricsRegistry::GetCounter(absl::string_view name, absl::string_view help,
                                     const MetricLabels& labels) {
  return *GetSeries(name, help, Kind::kCounter, labels, {}).counter;
}

Gauge& MetricsRegistry::GetGauge(absl::string_view name, absl::string_view help,
                                 const MetricLabels& labels) {
  return *GetSeries(name, help, Kind::kGauge, labels, {}).gauge;
}

Histogram& MetricsRegistry::GetHistogram(absl::string_view name, absl::string_view help,
                                         std::vector<double> bounds, const MetricLabels& labels) {
  return *GetSeries(name, help, Kind::kHistogram, labels, std::move(bounds)).histogram;
}

void MetricsRegistry::AddCallbackGauge(absl::string_view name, absl::string_view help,
                                       std::function<double()> fn) {
  absl::MutexLock lock(&mu_);
  auto [it, inserted] = families_.try_emplace(std::string(name));
  if (inserted) {
    it->second = Family::Create(name, help, Kind::kCallbackGauge);
  } else if (it->second->kind != Kind::kCallbackGauge) {
    Fatal(absl::StrCat("metric ", name, " is a ", KindName(static_cast<int>(it->second->kind)),
                       ", not a callback gauge"));
  }
  it->second->callback = std::move(fn);
}

std::string MetricsRegistry::Render() const {
  // Families are formatted under the lock; callbacks run after it is released so that a slow
  // callback (or one that touches the registry) cannot stall or deadlock other threads.
  struct Part {
    std::string text;
    // Set for callback gauges. Families are never removed and their names never change.
    const std::string* callback_name = nullptr;
    std::function<double()> callback;
  };
  std::vector<Part> parts;
  {
    absl::ReaderMutexLock lock(&mu_);
    parts.reserve(families_.size());
    for (const auto& [name, family] : families_) {
      Part& part = parts.emplace_back();
      std::string& out = part.text;
      absl::StrAppend(&out, "# HELP ", family->name, " ");
      AppendEscapedHelp(out, family->help);
      absl::StrAppend(&out, "\n# TYPE ", family->name, " ",
                      KindName(static_cast<int>(family->kind)), "\n");
      if (family->kind == Kind::kCallbackGauge) {
        part.callback_name = &family->name;
        part.callback = family->callback;
        continue;
      }
      for (const auto& [values, series] : family->series) {
        switch (family->kind) {
          case Kind::kCounter:
            AppendSample(out, family->name, family->label_names, values, series.counter->value());
            break;
          case Kind::kGauge:
            AppendSample(out, family->name, family->label_names, values, series.gauge->value());
            break;
          case Kind::kHistogram: {
            const Histogram& histogram = *series.histogram;
            const std::vector<uint64_t> cumulative = histogram.CumulativeCounts();
            const std::string bucket_name = absl::StrCat(family->name, "_bucket");
            for (size_t i = 0; i < cumulative.size(); ++i) {
              const std::string le = i < histogram.bounds().size()
                                         ? FormatValue(histogram.bounds()[i])
                                         : std::string("+Inf");
              AppendSample(out, bucket_name, family->label_names, values,
                           static_cast<double>(cumulative[i]), &le);
            }
            AppendSample(out, absl::StrCat(family->name, "_sum"), family->label_names, values,
                         histogram.sum());
            AppendSample(out, absl::StrCat(family->name, "_count"), family->label_names, values,
                         static_cast<double>(cumulative.back()));
            break;
          }
          case Kind::kCallbackGauge:
            break;  // handled above
        }
      }
    }
  }

  std::string out;
  for (Part& part : parts) {
    if (part.callback_name != nullptr) {
      const double value = part.callback ? part.callback() : std::nan("");
      AppendSample(part.text, *part.callback_name, {}, {}, value);
    }
    out += part.text;
  }
  return out;
}

std::vector<double> LatencyBuckets() {
  return {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
}

}  // namespace fhirgw::gateway
