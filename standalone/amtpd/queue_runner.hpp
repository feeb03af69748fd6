// Sends queued mail on by AMTP: each due entry is tried on a delivery thread (SRV, TLS,
// the core's client session), then its envelope is updated on disk: delivered and
// refused recipients are settled, the rest retried by queue.retry-schedule until
// queue.max-age. Refusals (5xx, an MPC DENY in the server's EHLO, expiry) become one
// bounce to the sender with MPC net/autoresponse (draft s6).
#pragma once

#include "amtpd/runtime.hpp"
#include "amtp/log.hpp"
#include "amtp/queue.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

namespace amtp::amtpd {

// Attempts run on threads of their own (`delivery`), never on the storage threads
// whose fsyncs hold inbound sessions' 250s: a slow or stalling remote server cannot
// delay what we accept. Reading the queue directory runs on `disk`, not on the loop.
class QueueRunner {
public:
    QueueRunner(boost::asio::io_context& io, boost::asio::thread_pool& delivery, boost::asio::thread_pool& disk,
                Queue& queue, std::function<std::shared_ptr<const Runtime>()> runtime, LogSink log);
    // Reads the queue from disk (at start, after a session queued mail, on SIGUSR1), off
    // the loop; requests made while a read runs are served by one more read after it.
    void rescan();
    void stop();

private:
    void scanned(std::vector<QueueEntry> loaded);
    void schedule();
    void run_due();
    void finished(QueueEntry entry, bool removed);

    boost::asio::io_context& io_;
    boost::asio::thread_pool& workers_;
    boost::asio::thread_pool& disk_;
    Queue& queue_;
    std::function<std::shared_ptr<const Runtime>()> runtime_;
    LogSink log_;
    std::map<std::string, QueueEntry> entries_;
    std::set<std::string> in_flight_;
    bool scanning_ = false;
    bool scan_again_ = false;
    // Entries settled on the loop while a read of the directory ran: the read may
    // predate their update or removal, so the loop's state wins for them.
    std::set<std::string> settled_during_scan_;
    boost::asio::steady_timer timer_;
    bool stopped_ = false;
    // Set by stop(): running attempts end within a fraction of a second, so that a
    // SIGTERM is not held up by a slow remote server.
    std::shared_ptr<std::atomic<bool>> cancel_ = std::make_shared<std::atomic<bool>>(false);
};

// One delivery attempt of one entry (blocking; on a worker thread). Returns the entry
// with its recipients settled or rescheduled; writes the bounce if one is due.
// `cancel` set (amtpd stopping) ends the attempt early; what is left stays queued.
QueueEntry attempt_entry(const Runtime& runtime, Queue& queue, QueueEntry entry, const LogSink& log,
                         const std::atomic<bool>* cancel = nullptr);

} // namespace amtp::amtpd
