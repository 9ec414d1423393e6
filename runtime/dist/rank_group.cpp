#include "runtime/dist/rank_group.h"

// Debian's LibTorch config does not define it; its library has Gloo compiled in.
#ifndef USE_C10D_GLOO
#define USE_C10D_GLOO
#endif
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <cstdlib>
#include <thread>
#include <vector>

namespace fusec::rt {
namespace {

using Clock = std::chrono::steady_clock;

/// The store key the leader's failure is posted under.
constexpr const char* kFailureKey = "leader-failed";

double SecondsSince(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

/// torchrun's rule: with TORCHELASTIC_USE_AGENT_STORE=True the agent hosts the store and every rank is a
/// client (its keys under /worker/attempt_<restart count>), otherwise rank 0 hosts it.
bool UsesAgentStore() {
  const char* value = std::getenv("TORCHELASTIC_USE_AGENT_STORE");
  return value != nullptr && std::string(value) == "True";
}

std::string AgentStorePrefix() {
  const char* restarts = std::getenv("TORCHELASTIC_RESTART_COUNT");
  return std::string("/worker/attempt_") + (restarts != nullptr ? restarts : "0");
}

/// Gloo's transport: the interface GLOO_SOCKET_IFNAME names, else the address the host name resolves to.
std::shared_ptr<::gloo::transport::Device> GlooDevice() {
  if (const char* interface = std::getenv("GLOO_SOCKET_IFNAME"); interface != nullptr && *interface != '\0') {
    return c10d::ProcessGroupGloo::createDeviceForInterface(interface);
  }
  return c10d::ProcessGroupGloo::createDefaultDevice();
}

std::string MessageOf(const std::exception& error) {
  if (const auto* torch_error = dynamic_cast<const c10::Error*>(&error)) return torch_error->what_without_backtrace();
  return error.what();
}

}  // namespace

struct RankGroup::Impl {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> group;
  std::vector<decltype(std::declval<c10d::ProcessGroupGloo&>().allreduce(std::declval<std::vector<at::Tensor>&>()))>
      started;
  std::vector<int64_t> started_bytes;
};

RankGroup::RankGroup(int64_t rank, int64_t size, int64_t local_rank, std::unique_ptr<Impl> impl)
    : rank_(rank), size_(size), local_rank_(local_rank), impl_(std::move(impl)) {}

RankGroup::~RankGroup() = default;

std::unique_ptr<RankGroup> RankGroup::Connect(const LaunchEnvironment& launch, std::chrono::milliseconds timeout) {
  const std::string where = "rank " + std::to_string(launch.rank) + " of " + std::to_string(launch.world_size);
  auto impl = std::make_unique<Impl>();
  try {
    c10d::TCPStoreOptions store_options;
    store_options.port = static_cast<uint16_t>(launch.master_port);
    store_options.timeout = timeout;
    store_options.numWorkers = static_cast<size_t>(launch.world_size);
    const bool agent_store = UsesAgentStore();
    store_options.isServer = !agent_store && launch.rank == 0;
    store_options.waitWorkers = false;
    store_options.multiTenant = !agent_store;
    c10::intrusive_ptr<c10d::Store> tcp = c10::make_intrusive<c10d::TCPStore>(launch.master_addr, store_options);
    // Our keys apart from the agent's (and from another group's, when the store is shared).
    impl->store = c10::make_intrusive<c10d::PrefixStore>(
        (agent_store ? AgentStorePrefix() + "/" : std::string()) + "fusec", tcp);
    auto options = c10d::ProcessGroupGloo::Options::create(timeout);
    options->devices.push_back(GlooDevice());
    options->threads = 2;
    impl->group = c10::make_intrusive<c10d::ProcessGroupGloo>(impl->store, static_cast<int>(launch.rank),
                                                              static_cast<int>(launch.world_size), options);
  } catch (const std::exception& error) {
    throw DistributedError(where + ": cannot connect to the other ranks at " + launch.master_addr + ":" +
                           std::to_string(launch.master_port) + " within " +
                           std::to_string(std::chrono::duration_cast<std::chrono::seconds>(timeout).count()) +
                           " s: " + MessageOf(error));
  }
  return std::unique_ptr<RankGroup>(new RankGroup(launch.rank, launch.world_size, launch.local_rank, std::move(impl)));
}

std::string RankGroup::Describe() const { return "rank " + std::to_string(rank_) + " of " + std::to_string(size_); }

template <typename Call>
void RankGroup::Collective(const char* what, int64_t bytes, Call&& call) {
  const auto start = Clock::now();
  try {
    call();
  } catch (const std::exception& error) {
    throw DistributedError(Describe() + ": " + what + " failed after " + std::to_string(SecondsSince(start)) +
                           " s, so another rank stopped or stopped answering (its own error is printed with its "
                           "rank): " + MessageOf(error));
  }
  tally_.seconds_waiting += SecondsSince(start);
  tally_.calls += 1;
  tally_.bytes_reduced += bytes;
}

void RankGroup::Sum(torch::Tensor& values) {
  std::vector<at::Tensor> tensors{values};
  Collective("a sum over the ranks", values.numel() * values.element_size(),
             [&] { impl_->group->allreduce(tensors)->wait(); });
}

void RankGroup::Max(torch::Tensor& values) {
  std::vector<at::Tensor> tensors{values};
  c10d::AllreduceOptions options;
  options.reduceOp = c10d::ReduceOp::MAX;
  Collective("a maximum over the ranks", 0, [&] { impl_->group->allreduce(tensors, options)->wait(); });
}

void RankGroup::Broadcast(torch::Tensor& values, int64_t root) {
  std::vector<at::Tensor> tensors{values};
  c10d::BroadcastOptions options;
  options.rootRank = root;
  Collective("a broadcast", 0, [&] { impl_->group->broadcast(tensors, options)->wait(); });
}

void RankGroup::StartSum(torch::Tensor& values) {
  std::vector<at::Tensor> tensors{values};
  Collective("starting a gradient sum", 0, [&] { impl_->started.push_back(impl_->group->allreduce(tensors)); });
  impl_->started_bytes.push_back(values.numel() * values.element_size());
}

void RankGroup::StartSumTo(torch::Tensor& values, int64_t root) {
  std::vector<at::Tensor> tensors{values};
  c10d::ReduceOptions options;
  options.rootRank = root;
  Collective("starting a gradient sum", 0, [&] { impl_->started.push_back(impl_->group->reduce(tensors, options)); });
  impl_->started_bytes.push_back(values.numel() * values.element_size());
}

void RankGroup::WaitForOldestStarted() {
  if (impl_->started.empty()) return;
  Collective("a gradient sum", impl_->started_bytes.front(), [&] { impl_->started.front()->wait(); });
  impl_->started.erase(impl_->started.begin());
  impl_->started_bytes.erase(impl_->started_bytes.begin());
}

void RankGroup::WaitForStarted() {
  while (!impl_->started.empty()) WaitForOldestStarted();
}

void RankGroup::Barrier() {
  Collective("waiting for every rank", 0, [&] { impl_->group->barrier()->wait(); });
}

void RankGroup::Post(const std::string& key, const std::string& value) {
  try {
    impl_->store->set(key, std::vector<uint8_t>(value.begin(), value.end()));
  } catch (const std::exception& error) {
    throw DistributedError(Describe() + ": cannot reach the store to post `" + key + "`: " + MessageOf(error));
  }
}

std::string RankGroup::AwaitPost(const std::string& key) {
  try {
    while (!impl_->store->check({key})) {
      if (impl_->store->check({kFailureKey})) {
        const std::vector<uint8_t> failure = impl_->store->get(kFailureKey);
        throw DistributedError(Describe() + ": stopping because rank 0 stopped: " +
                               std::string(failure.begin(), failure.end()));
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    const std::vector<uint8_t> value = impl_->store->get(key);
    return std::string(value.begin(), value.end());
  } catch (const DistributedError&) {
    throw;
  } catch (const std::exception& error) {
    throw DistributedError(Describe() + ": the store is gone while waiting for rank 0 (`" + key +
                           "`), so rank 0 stopped: " + MessageOf(error));
  }
}

void RankGroup::PostFailure(const std::string& message) { Post(kFailureKey, message); }

}  // namespace fusec::rt
