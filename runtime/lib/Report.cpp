//===- Report.cpp - Training curves as an SVG picture ---------------------===//

#include "Report.h"
#include "Json.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>

using namespace mass::rt;

void Report::add(double x, const std::string &task, const std::string &value,
                 const std::string &split, double y) {
  if (!std::isfinite(x) || !std::isfinite(y))
    return;
  Key key{task, value};
  if (!series.count(key))
    order.push_back(key);
  series[key][split].emplace_back(x, y);
}

std::string Report::toText() const {
  Json all = Json::array();
  for (const Key &key : order)
    for (const auto &[split, points] : series.at(key))
      for (const auto &[x, y] : points) {
        Json p = Json::array();
        p.push(Json::number(x));
        p.push(Json::string(key.first));
        p.push(Json::string(key.second));
        p.push(Json::string(split));
        p.push(Json::number(y));
        all.push(p);
      }
  return all.dump();
}

bool Report::fromText(const std::string &text) {
  Json all;
  std::string error;
  if (!Json::parse(text, all, error) || !all.isArray())
    return false;
  Report read;
  for (const Json &p : all.items()) {
    const std::vector<Json> &f = p.items();
    if (!p.isArray() || f.size() != 5 || !f[0].isNumber() || !f[1].isString() ||
        !f[2].isString() || !f[3].isString() || !f[4].isNumber())
      return false;
    read.add(f[0].num(), f[1].str(), f[2].str(), f[3].str(), f[4].num());
  }
  *this = std::move(read);
  return true;
}

namespace {

std::string escape(const std::string &s) {
  std::string out;
  for (char c : s) {
    switch (c) {
    case '&':
      out += "&amp;";
      break;
    case '<':
      out += "&lt;";
      break;
    case '>':
      out += "&gt;";
      break;
    case '"':
      out += "&quot;";
      break;
    default:
      out += c;
    }
  }
  return out;
}

std::string fmt(const char *format, double v) {
  char text[64];
  std::snprintf(text, sizeof text, format, v);
  return text;
}

/// The tick spacing for [lo, hi]: 1, 2 or 5 times a power of ten, about
/// five ticks across.
double tickStep(double lo, double hi) {
  double raw = (hi - lo) / 5;
  double power = std::pow(10.0, std::floor(std::log10(raw)));
  for (double m : {1.0, 2.0, 5.0})
    if (m * power >= raw)
      return m * power;
  return 10 * power;
}

/// The ticks of `step` within [lo, hi].
std::vector<double> ticks(double lo, double hi, double step) {
  std::vector<double> out;
  for (int64_t k = static_cast<int64_t>(std::ceil(lo / step - 1e-9));
       k * step <= hi + step * 1e-9; ++k)
    out.push_back(k * step);
  return out;
}

std::string tickText(double v) { return fmt("%.4g", v); }

/// [lo, hi] with room around a single value.
void widen(double &lo, double &hi, double pad) {
  if (hi - lo < 1e-12) {
    double d = std::max(std::fabs(lo) * 0.1, pad);
    lo -= d, hi += d;
  }
}

} // namespace

std::string Report::svg(const std::string &title,
                        const std::string &xLabel) const {
  const int panelW = 440, panelH = 280, columns = order.size() > 1 ? 2 : 1;
  const int top = 56, left = 64, right = 16, bottom = 44, head = 26;
  const int rows = static_cast<int>((order.size() + columns - 1) / columns);
  const int width = columns * panelW, height = top + rows * panelH;
  const char *colour[] = {"#1f77b4", "#ff7f0e"}; // train, val
  std::string s;
  s += "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" +
       std::to_string(width) + "\" height=\"" + std::to_string(height) +
       "\" viewBox=\"0 0 " + std::to_string(width) + " " +
       std::to_string(height) +
       "\" font-family=\"sans-serif\" font-size=\"12\">\n";
  s += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  s += "<text x=\"12\" y=\"24\" font-size=\"16\" font-weight=\"bold\">" +
       escape(title) + "</text>\n";
  // The legend.
  const char *names[] = {"train", "val"};
  for (int k = 0; k < 2; ++k) {
    int x = 12 + k * 90;
    s += "<line x1=\"" + std::to_string(x) + "\" y1=\"40\" x2=\"" +
         std::to_string(x + 24) + "\" y2=\"40\" stroke=\"" + colour[k] +
         "\" stroke-width=\"2\"/>\n";
    s += "<text x=\"" + std::to_string(x + 30) + "\" y=\"44\">" + names[k] +
         "</text>\n";
  }
  for (size_t p = 0; p < order.size(); ++p) {
    const Key &key = order[p];
    const auto &splits = series.at(key);
    const int ox = static_cast<int>(p % columns) * panelW,
              oy = top + static_cast<int>(p / columns) * panelH;
    const int x0 = ox + left, x1 = ox + panelW - right, y0 = oy + head,
              y1 = oy + panelH - bottom;
    double xlo = INFINITY, xhi = -INFINITY, ylo = INFINITY, yhi = -INFINITY;
    for (const auto &[split, points] : splits)
      for (const auto &[x, y] : points) {
        xlo = std::min(xlo, x), xhi = std::max(xhi, x);
        ylo = std::min(ylo, y), yhi = std::max(yhi, y);
      }
    widen(xlo, xhi, 0.5);
    widen(ylo, yhi, 0.5);
    // The value axis ends on ticks around the data; the step axis leaves a
    // little room so that the first and last points clear the frame.
    double ystep = tickStep(ylo, yhi), xstep = tickStep(xlo, xhi);
    ylo = std::floor(ylo / ystep + 1e-9) * ystep;
    yhi = std::ceil(yhi / ystep - 1e-9) * ystep;
    std::vector<double> yt = ticks(ylo, yhi, ystep),
                        xt = ticks(xlo, xhi, xstep);
    double room = (xhi - xlo) * 0.03;
    xlo -= room, xhi += room;
    auto px = [&](double x) {
      return x0 + (x - xlo) / (xhi - xlo) * (x1 - x0);
    };
    auto py = [&](double y) {
      return y1 - (y - ylo) / (yhi - ylo) * (y1 - y0);
    };
    s += "<g>\n<text x=\"" + std::to_string(ox + panelW / 2) + "\" y=\"" +
         std::to_string(oy + 16) +
         "\" text-anchor=\"middle\" font-weight=\"bold\">" +
         escape(key.first + ": " + key.second) + "</text>\n";
    for (double t : yt) {
      std::string y = fmt("%.1f", py(t));
      s += "<line x1=\"" + std::to_string(x0) + "\" y1=\"" + y + "\" x2=\"" +
           std::to_string(x1) + "\" y2=\"" + y +
           "\" stroke=\"#e4e4e4\"/>\n<text x=\"" + std::to_string(x0 - 6) +
           "\" y=\"" + fmt("%.1f", py(t) + 4) + "\" text-anchor=\"end\">" +
           tickText(t) + "</text>\n";
    }
    for (double t : xt) {
      std::string x = fmt("%.1f", px(t));
      s += "<line x1=\"" + x + "\" y1=\"" + std::to_string(y1) + "\" x2=\"" +
           x + "\" y2=\"" + std::to_string(y1 + 4) +
           "\" stroke=\"black\"/>\n<text x=\"" + x + "\" y=\"" +
           std::to_string(y1 + 18) + "\" text-anchor=\"middle\">" +
           tickText(t) + "</text>\n";
    }
    s += "<rect x=\"" + std::to_string(x0) + "\" y=\"" + std::to_string(y0) +
         "\" width=\"" + std::to_string(x1 - x0) + "\" height=\"" +
         std::to_string(y1 - y0) + "\" fill=\"none\" stroke=\"black\"/>\n";
    s += "<text x=\"" + std::to_string((x0 + x1) / 2) + "\" y=\"" +
         std::to_string(y1 + 36) + "\" text-anchor=\"middle\">" +
         escape(xLabel) + "</text>\n";
    for (int k = 0; k < 2; ++k) {
      auto it = splits.find(names[k]);
      if (it == splits.end())
        continue;
      std::string points;
      for (const auto &[x, y] : it->second)
        points += fmt("%.1f", px(x)) + "," + fmt("%.1f", py(y)) + " ";
      s += "<polyline class=\"" + std::string(names[k]) +
           "\" fill=\"none\" stroke=\"" + colour[k] +
           "\" stroke-width=\"2\" points=\"" + points + "\"/>\n";
      if (it->second.size() <= 40)
        for (const auto &[x, y] : it->second)
          s += "<circle cx=\"" + fmt("%.1f", px(x)) + "\" cy=\"" +
               fmt("%.1f", py(y)) + "\" r=\"2.5\" fill=\"" + colour[k] +
               "\"/>\n";
    }
    s += "</g>\n";
  }
  s += "</svg>\n";
  return s;
}
