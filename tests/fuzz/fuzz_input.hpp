// Turns a fuzzer's bytes into message frames: each frame is one length byte (0-255) and that
// many bytes (fewer at the end of the input). Shared by the frame-based fuzz targets.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include <zmq.hpp>

namespace zguard::fuzz {

inline std::vector<zmq::message_t> SplitFrames(const std::uint8_t* data, std::size_t size) {
  std::vector<zmq::message_t> frames;
  std::size_t at = 0;
  while (at < size && frames.size() < 64) {
    std::size_t length = data[at++];
    if (length > size - at) length = size - at;
    frames.emplace_back(data + at, length);
    at += length;
  }
  return frames;
}

}  // namespace zguard::fuzz
