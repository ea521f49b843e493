// What may be read and what may be replaced. Every model, data and rule file
// is read through MappedFile, which refuses anything but a regular file (a FIFO
// would block forever, a device never ends) and notes the file's identity; an
// output may then replace neither a file this process read (`calibrate b.onnx
// -o b.onnx` would turn the model into statistics) nor anything that is not a
// regular file (`-o /dev/null` as root would replace the device node).
#pragma once

#include <string>

namespace slmopt {

// The files this process has open for reading (MappedFile notes each one while
// it lives), by device and inode: an output may not replace one.
void note_input_file(unsigned long long device, unsigned long long inode);
void forget_input_file(unsigned long long device, unsigned long long inode);

// May `path` be replaced by a new file? Returns the path to write: `path`
// itself, or the file a symbolic link at `path` points to (the link stays a
// link). Throws Error(BadInput) naming `path` when an existing target is not
// a regular file, is a dangling link, or (unless `may_replace_input`, as for
// a cache that is read and then refreshed) is a file this process read.
std::string checked_output_path(const std::string& path, bool may_replace_input = false);

// A file that a model names relative to its own folder (ONNX external data,
// safetensors shards): `base`/`location`, refused unless it resolves, symbolic
// links followed, inside `base`. `what` begins the messages ("external data").
std::string path_inside(const std::string& base, const std::string& location, const std::string& what);

// Temporary files to remove when SIGINT, SIGTERM or SIGHUP ends the process:
// AtomicFile tracks its own. The handlers, installed by these calls, remove
// them and pass the signal on to whatever handler was there before.
void track_temporary(const std::string& path);
void untrack_temporary(const std::string& path);

}  // namespace slmopt
