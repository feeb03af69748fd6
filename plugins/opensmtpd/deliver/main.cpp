// amtp-opensmtpd-deliver: smtpd's mda for delivery.local-domain. Writes the message
// into <maildir-root>/<domain>/<local-part>/ with the core's durable Maildir code,
// in the same form amtpd stores (CRLF lines), so every front-end delivers alike.
// smtpd prepends Return-Path and Delivered-To for every mda; the AMTP trace fields
// (our Received naming the verified identity, Authentication-Results, MPC) come
// first in amtpd's messages, so those two lines are left out.
// Exit codes as sendmail's mda convention: 0 delivered, 75 try again, 67 no such user
// (delivery.recipients, given with --recipients, decides through the core).
#include "amtp/local_delivery.hpp"
#include "amtp/maildir.hpp"
#include "amtp/names.hpp"

#include <sys/socket.h>
#include <sys/un.h>
#include <sysexits.h>
#include <unistd.h>

#include <cctype>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <cstdlib>
#include <iostream>
#include <string>

using namespace amtp;

namespace {

// smtpd's message id, from the Received field it wrote ("(OpenSMTPD) with ESMTP id
// 4fbc9b38"): the first such field is smtpd's, below only our trace fields.
std::string smtpd_message_id(const std::string& message)
{
    const auto header_end = message.find("\r\n\r\n");
    const auto at = message.find("(OpenSMTPD) with ");
    if (at == std::string::npos || (header_end != std::string::npos && at > header_end))
        return {};
    const auto id = message.find(" id ", at);
    if (id == std::string::npos || id > at + 40)
        return {};
    std::string out;
    for (std::size_t i = id + 4; i < message.size() && out.size() < 16 && std::isxdigit(static_cast<unsigned char>(message[i])); ++i)
        out += message[i];
    return out;
}

// Tells the gate this recipient is stored, so it can pass smtpd's 250 on. Best
// effort: the gate releases the 250 after a bound anyway.
void notify(const std::string& name, const std::string& message)
{
    const std::string id = smtpd_message_id(message);
    if (id.empty() || name.size() + 1 >= sizeof(sockaddr_un::sun_path))
        return;
    const int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return;
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path + 1, name.data(), name.size()); // abstract namespace
    const std::string datagram = "D " + id;
    (void)::sendto(fd, datagram.data(), datagram.size(), 0, reinterpret_cast<sockaddr*>(&addr),
                   static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + name.size()));
    ::close(fd);
}

bool starts_with(const std::string& s, const char* prefix)
{
    return s.rfind(prefix, 0) == 0;
}

// The filter ends the header block it passed on with "X-AMTP-Header-End:"; smtpd then
// appends Date: and Message-ID: when they were missing (it treats its loopback
// listener as submission). The marker and whatever follows it in the header block go,
// so the stored message is the one the client sent, as amtpd stores it.
void drop_smtpd_additions(std::string& message)
{
    const auto blank = message.find("\r\n\r\n");
    const std::size_t header_end = blank == std::string::npos ? message.size() : blank + 2;
    std::size_t pos = 0;
    while (pos < header_end) {
        const auto nl = message.find("\r\n", pos);
        if (nl == std::string::npos)
            return;
        if (message.compare(pos, 18, "X-AMTP-Header-End:") == 0) {
            message.erase(pos, header_end - pos);
            return;
        }
        pos = nl + 2;
    }
}

} // namespace

int main(int argc, char** argv)
{
    // --recipients MODE: delivery.recipients, so that a message smtpd itself makes (a
    // bounce to a local sender) cannot create a mailbox the filter would have refused.
    std::string recipients_mode = "any";
    if (argc >= 3 && std::string(argv[1]) == "--recipients") {
        recipients_mode = argv[2];
        argv += 2;
        argc -= 2;
    }
    if (argc != 2 && argc != 3) {
        std::cerr << "usage: amtp-opensmtpd-deliver [--recipients MODE] MAILDIR-ROOT [NOTICE-SOCKET] (recipient from "
                     "ORIGINAL_RECIPIENT)\n";
        return EX_USAGE;
    }
    const std::string root = argv[1];
    // smtpd hands the recipient in the environment: no shell quoting of a peer's
    // local part is ever involved.
    const char* rcpt = std::getenv("ORIGINAL_RECIPIENT");
    if (!rcpt || !*rcpt)
        rcpt = std::getenv("RECIPIENT");
    const std::string recipient = rcpt ? rcpt : "";
    const auto at = recipient.rfind('@');
    if (at == std::string::npos || at == 0) {
        std::cerr << "amtp-opensmtpd-deliver: no usable recipient\n";
        return EX_NOUSER;
    }
    const auto domain = normalize_host_name(recipient.substr(at + 1));
    if (!domain) {
        std::cerr << "amtp-opensmtpd-deliver: bad recipient domain\n";
        return EX_NOUSER;
    }
    std::string local = recipient.substr(0, at);

    std::string message;
    std::string line;
    bool leading = true;
    int c;
    while ((c = std::getchar()) != EOF) {
        if (c != '\n') {
            line += static_cast<char>(c);
            continue;
        }
        if (!line.empty() && line.back() == '\r')
            line.pop_back();
        if (leading && (starts_with(line, "Return-Path: ") || starts_with(line, "Delivered-To: "))) {
            line.clear();
            continue;
        }
        leading = false;
        message += line;
        message += "\r\n";
        line.clear();
    }
    if (!line.empty()) {
        message += line;
        message += "\r\n";
    }
    if (std::ferror(stdin))
        return EX_TEMPFAIL;
    drop_smtpd_additions(message);
    // After reading the message: smtpd is still writing it to us.
    {
        Settings settings;
        settings.delivery.maildir_root = root;
        settings.delivery.recipients = recipients_mode;
        try {
            const RecipientVerdict v = LocalRecipients::from_settings(settings)->check(local + "@" + *domain);
            if (v.reason == Reason::unknown_recipient) {
                std::cerr << "amtp-opensmtpd-deliver: " << recipient << ": unknown recipient (" << v.detail << ")\n";
                return EX_NOUSER;
            }
            if (v.reason != Reason::none) {
                std::cerr << "amtp-opensmtpd-deliver: " << recipient << ": " << v.detail << "\n";
                return EX_TEMPFAIL;
            }
        } catch (const std::exception& e) {
            std::cerr << "amtp-opensmtpd-deliver: " << e.what() << "\n";
            return EX_TEMPFAIL;
        }
    }
    const StoreResult r = store_in_maildir(root, *domain, local, {message});
    if (!r.ok) {
        std::cerr << "amtp-opensmtpd-deliver: " << r.error << "\n";
        return r.temporary ? EX_TEMPFAIL : EX_NOUSER;
    }
    if (argc == 3)
        notify(argv[2], message);
    return 0;
}
