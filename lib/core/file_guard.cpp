#include "core/file_guard.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <set>
#include <utility>

#include "core/error.hpp"

namespace slmopt {
namespace {

std::mutex inputs_lock;
std::multiset<std::pair<unsigned long long, unsigned long long>>& inputs() {
  static std::multiset<std::pair<unsigned long long, unsigned long long>> open_inputs;
  return open_inputs;
}

// A signal handler may only call async-signal-safe functions: the paths sit in
// fixed slots, claimed and released with atomics, and the handler unlinks them.
constexpr int kSlots = 64;
constexpr size_t kPathBytes = 4096;
struct Slot {
  std::atomic<int> state{0};  // 0 free, 1 being written, 2 holds a path
  char path[kPathBytes];
};
Slot slots[kSlots];

// The handlers we displaced: after removing the temporaries, the signal goes
// on to them (by default, the process ends).
constexpr int kSignals[] = {SIGINT, SIGTERM, SIGHUP};
struct sigaction previous[3];

extern "C" void remove_temporaries_and_die(int sig) {
  for (auto& s : slots)
    if (s.state.load() == 2) ::unlink(s.path);
  for (int i = 0; i < 3; ++i)
    if (kSignals[i] == sig) ::sigaction(sig, &previous[i], nullptr);
  std::raise(sig);
}

// Installed again whenever another handler took the signal (a test framework
// installs its own per test); left alone where the signal is ignored (nohup).
void install_handlers() {
  for (int i = 0; i < 3; ++i) {
    struct sigaction current {};
    ::sigaction(kSignals[i], nullptr, &current);
    if (current.sa_handler == SIG_IGN || current.sa_handler == remove_temporaries_and_die) continue;
    struct sigaction action {};
    action.sa_handler = remove_temporaries_and_die;
    sigemptyset(&action.sa_mask);
    ::sigaction(kSignals[i], &action, &previous[i]);
  }
}

}  // namespace

void note_input_file(unsigned long long device, unsigned long long inode) {
  const std::lock_guard<std::mutex> hold(inputs_lock);
  inputs().emplace(device, inode);
}

void forget_input_file(unsigned long long device, unsigned long long inode) {
  const std::lock_guard<std::mutex> hold(inputs_lock);
  const auto it = inputs().find({device, inode});
  if (it != inputs().end()) inputs().erase(it);
}

std::string checked_output_path(const std::string& path, bool may_replace_input) {
  namespace fs = std::filesystem;
  struct stat link {};
  if (::lstat(path.c_str(), &link) != 0) return path;  // nothing there yet
  std::string target = path;
  if (S_ISLNK(link.st_mode)) {
    std::error_code ec;
    const fs::path resolved = fs::canonical(path, ec);
    if (ec) throw_bad_input("the output is a symbolic link to nothing (" + ec.message() + ")", path);
    target = resolved.string();
  }
  struct stat st {};
  if (::stat(target.c_str(), &st) != 0) return target;
  if (!S_ISREG(st.st_mode))
    throw_bad_input(std::string("the output exists and is not a regular file (") +
                        (S_ISDIR(st.st_mode) ? "a folder" : S_ISFIFO(st.st_mode) ? "a FIFO"
                                                        : S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode) ? "a device"
                                                                                                     : "a socket") +
                        "); name a file to write",
                    path);
  if (!may_replace_input) {
    const std::lock_guard<std::mutex> hold(inputs_lock);
    if (inputs().count({static_cast<unsigned long long>(st.st_dev), static_cast<unsigned long long>(st.st_ino)}))
      throw_bad_input("the output is a file this command reads; write to another path", path);
  }
  return target;
}

std::string path_inside(const std::string& base_dir, const std::string& location, const std::string& what) {
  namespace fs = std::filesystem;
  if (location.empty()) throw_bad_input(what + " has an empty location");
  const fs::path rel(location);
  if (rel.is_absolute() || location.front() == '/' || location.front() == '\\')
    throw_bad_input(what + " location '" + location + "' is an absolute path");
  for (const auto& part : rel)
    if (part == "..") throw_bad_input(what + " location '" + location + "' escapes the model's folder");
  const fs::path base = base_dir.empty() ? fs::path(".") : fs::path(base_dir);
  const fs::path full = base / rel;
  std::error_code ec;
  if (!fs::exists(full, ec)) throw_bad_input(what + " file '" + location + "' does not exist");
  const fs::path canon_base = fs::canonical(base, ec);
  const fs::path canon_full = fs::canonical(full, ec);
  if (ec) throw_bad_input("cannot resolve " + what + " file '" + location + "'");
  const auto mismatch = std::mismatch(canon_base.begin(), canon_base.end(), canon_full.begin(), canon_full.end());
  if (mismatch.first != canon_base.end())
    throw_bad_input(what + " location '" + location + "' resolves outside the model's folder");
  return full.string();
}

void track_temporary(const std::string& path) {
  install_handlers();
  if (path.size() >= kPathBytes) return;
  for (auto& s : slots) {
    int expected = 0;
    if (!s.state.compare_exchange_strong(expected, 1)) continue;
    std::memcpy(s.path, path.c_str(), path.size() + 1);
    s.state.store(2);
    return;
  }
}

void untrack_temporary(const std::string& path) {
  for (auto& s : slots) {
    if (s.state.load() != 2 || path != s.path) continue;
    s.state.store(0);
    return;
  }
}

}  // namespace slmopt
