// Frame decoding: well-formed messages are understood, and every malformed
// shape a peer can send is rejected with a reason instead of misread.
#include "proto/mdp.hpp"

#include <gtest/gtest.h>

namespace zguard::proto {
namespace {

std::vector<zmq::message_t> Frames(std::initializer_list<std::string_view> parts) {
  std::vector<zmq::message_t> out;
  for (const auto part : parts) out.push_back(Frame(part));
  return out;
}

const std::string kReady(1, '\x01');
const std::string kRequest(1, '\x02');
const std::string kReply(1, '\x03');
const std::string kHeartbeat(1, '\x04');
const std::string kDisconnect(1, '\x05');

TEST(DecodeClient, ReqClientWithDelimiter) {
  const auto frames = Frames({"id", "", "MDPC01", "echo", "a", "b"});
  const auto msg = DecodeClientMessage(frames);
  ASSERT_EQ(msg.error, nullptr);
  EXPECT_TRUE(msg.has_delimiter);
  EXPECT_EQ(View(frames[msg.service]), "echo");
  EXPECT_EQ(msg.body, 4U);
}

TEST(DecodeClient, DealerClientWithoutDelimiterAndNoBody) {
  const auto frames = Frames({"id", "MDPC01", "echo"});
  const auto msg = DecodeClientMessage(frames);
  ASSERT_EQ(msg.error, nullptr);
  EXPECT_FALSE(msg.has_delimiter);
  EXPECT_EQ(msg.service, 2U);
  EXPECT_EQ(msg.body, frames.size());
}

TEST(DecodeClient, RejectsMalformed) {
  for (const auto& frames : {Frames({"id"}), Frames({"id", ""}), Frames({"id", "", "MDPC02", "s"}),
                             Frames({"id", "MDPW01", "s"}), Frames({"id", "", "MDPC01"}),
                             Frames({"id", "", "", "MDPC01", "s"})}) {
    EXPECT_NE(DecodeClientMessage(frames).error, nullptr);
  }
}

TEST(DecodeWorker, EveryCommand) {
  auto ready = Frames({"w", "", "MDPW01", kReady, "echo"});
  auto msg = DecodeWorkerMessage(ready);
  ASSERT_EQ(msg.error, nullptr);
  EXPECT_EQ(msg.command, WorkerCommand::kReady);
  EXPECT_EQ(View(ready[msg.arg]), "echo");

  auto reply = Frames({"w", "", "MDPW01", kReply, "client", "", "body1", "body2"});
  msg = DecodeWorkerMessage(reply);
  ASSERT_EQ(msg.error, nullptr);
  EXPECT_EQ(msg.command, WorkerCommand::kReply);
  EXPECT_EQ(View(reply[msg.arg]), "client");
  EXPECT_EQ(msg.body, 6U);

  auto empty_reply = Frames({"w", "", "MDPW01", kReply, "client", ""});
  msg = DecodeWorkerMessage(empty_reply);
  ASSERT_EQ(msg.error, nullptr);
  EXPECT_EQ(msg.body, empty_reply.size());

  EXPECT_EQ(DecodeWorkerMessage(Frames({"w", "", "MDPW01", kHeartbeat})).command,
            WorkerCommand::kHeartbeat);
  EXPECT_EQ(DecodeWorkerMessage(Frames({"w", "", "MDPW01", kDisconnect})).command,
            WorkerCommand::kDisconnect);
  // DEALER workers that skip the delimiter are tolerated.
  EXPECT_EQ(DecodeWorkerMessage(Frames({"w", "MDPW01", kHeartbeat})).error, nullptr);
}

TEST(DecodeWorker, RejectsMalformed) {
  const std::vector<std::vector<zmq::message_t>> bad = [] {
    std::vector<std::vector<zmq::message_t>> v;
    v.push_back(Frames({"w", ""}));
    v.push_back(Frames({"w", "", "MDPC01", kReady, "echo"}));         // client header
    v.push_back(Frames({"w", "", "MDPW01"}));                         // no command
    v.push_back(Frames({"w", "", "MDPW01", "\x01\x01", "echo"}));     // two-byte command
    v.push_back(Frames({"w", "", "MDPW01", "\x09"}));                 // unknown command
    v.push_back(Frames({"w", "", "MDPW01", kReady}));                 // READY without service
    v.push_back(Frames({"w", "", "MDPW01", kReady, ""}));             // empty service
    v.push_back(Frames({"w", "", "MDPW01", kReply, "client"}));       // no delimiter
    v.push_back(Frames({"w", "", "MDPW01", kReply, "client", "x"}));  // not empty
    v.push_back(Frames({"w", "", "MDPW01", kRequest, "c", ""}));      // broker-only command
    return v;
  }();
  for (const auto& frames : bad) {
    EXPECT_NE(DecodeWorkerMessage(frames).error, nullptr) << frames.size();
  }
}

TEST(ParseReply, BodyAndErrors) {
  auto ok = Frames({"", "MDPC01", "echo", "hi"});
  auto reply = ParseClientReply(ok, "echo");
  ASSERT_EQ(reply.error, nullptr);
  EXPECT_FALSE(reply.is_error);
  EXPECT_EQ(reply.body, 3U);

  auto error = Frames({"", "MDPC01", "echo", "zguard.error", "503", "no worker"});
  reply = ParseClientReply(error, "echo");
  ASSERT_EQ(reply.error, nullptr);
  EXPECT_TRUE(reply.is_error);
  EXPECT_EQ(reply.code, 503);
  EXPECT_EQ(reply.reason, "no worker");

  EXPECT_NE(ParseClientReply(ok, "other").error, nullptr);
  auto truncated = Frames({"", "MDPC01", "echo", "zguard.error", "503"});
  EXPECT_NE(ParseClientReply(truncated, "echo").error, nullptr);
  auto bad_code = Frames({"", "MDPC01", "echo", "zguard.error", "5x3", "r"});
  EXPECT_NE(ParseClientReply(bad_code, "echo").error, nullptr);
  auto no_header = Frames({"", "MDPC02", "echo"});
  EXPECT_NE(ParseClientReply(no_header, "echo").error, nullptr);
}

}  // namespace
}  // namespace zguard::proto
