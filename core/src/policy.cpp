#include "amtp/policy.hpp"

#include "ascii.hpp"
#include "amtp/errors.hpp"
#include "amtp/log.hpp"

#include <pugixml.hpp>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <set>
#include <sstream>

namespace amtp {

namespace {

using ascii::lower;

namespace fs = std::filesystem;

bool is_ldh(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
}

bool is_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

std::string in_quotes(std::string_view s)
{
    return "\"" + printable(s) + "\"";
}

// A domain as the policy stores it: lower case, no trailing dot, LDH labels of 1-63
// octets, 253 in all. IDNs must be written as A-labels, the form the server compares
// (profile B2); a U-label here would silently never match. Sets `why` on failure.
std::optional<std::string> normalize_domain(std::string_view text, std::string& why)
{
    std::string name = lower(text);
    if (!name.empty() && name.back() == '.')
        name.pop_back();
    if (name.empty()) {
        why = "empty domain";
        return std::nullopt;
    }
    if (std::any_of(name.begin(), name.end(), [](char c) { return static_cast<unsigned char>(c) >= 0x80; })) {
        why = "non-ASCII: write the domain in A-label (xn--) form";
        return std::nullopt;
    }
    if (name.size() > 253) {
        why = "longer than 253 characters";
        return std::nullopt;
    }
    std::size_t start = 0;
    while (true) {
        const auto dot = name.find('.', start);
        const auto label = std::string_view(name).substr(start, dot == std::string::npos ? std::string::npos : dot - start);
        if (label.empty() || label.size() > 63 || !std::all_of(label.begin(), label.end(), is_ldh) ||
            label.front() == '-' || label.back() == '-') {
            why = "not a host name (labels of 1-63 letters, digits and inner hyphens)";
            return std::nullopt;
        }
        if (dot == std::string::npos)
            break;
        start = dot + 1;
    }
    return name;
}

// local@domain, lower-cased, split at the last "@" (a quoted local part may hold one).
std::optional<std::string> normalize_address(std::string_view text, std::string& why)
{
    const auto at = text.rfind('@');
    if (at == std::string_view::npos || at == 0) {
        why = "not local-part@domain";
        return std::nullopt;
    }
    const auto local = text.substr(0, at);
    if (local.size() > 64) {
        why = "local part longer than 64 characters";
        return std::nullopt;
    }
    // Bytes >= 0x80 are UTF-8 local parts (RFC 6531); spaces and controls never occur.
    if (std::any_of(local.begin(), local.end(), [](char ch) {
            const auto c = static_cast<unsigned char>(ch);
            return c <= 0x20 || c == 0x7f;
        })) {
        why = "local part contains a space or a control character";
        return std::nullopt;
    }
    std::string domain_why;
    const auto domain = normalize_domain(text.substr(at + 1), domain_why);
    if (!domain) {
        why = "domain: " + domain_why;
        return std::nullopt;
    }
    return lower(local) + "@" + *domain;
}

// The lookup form of an address from the envelope: the same normalisation, without
// refusing anything (an address that could never be configured is simply not found).
std::string lookup_key(std::string_view address)
{
    std::string key = lower(address);
    if (!key.empty() && key.back() == '.' && key.find('@') != std::string::npos)
        key.pop_back();
    return key;
}

// "AB:CD:..." (as openssl x509 -fingerprint prints it) or 64 hex digits, to lower-case
// hex without separators, the form TrustStore compares.
std::optional<std::string> normalize_sha256(std::string_view text)
{
    std::string hex;
    if (text.find(':') != std::string_view::npos) {
        if (text.size() != 32 * 3 - 1)
            return std::nullopt;
        for (std::size_t i = 0; i < text.size(); i += 3) {
            if (i + 2 < text.size() && text[i + 2] != ':')
                return std::nullopt;
            hex += text.substr(i, 2);
        }
    } else {
        hex = std::string(text);
    }
    if (hex.size() != 64 || !std::all_of(hex.begin(), hex.end(), is_hex))
        return std::nullopt;
    return lower(hex);
}

// Offsets from pugixml to 1-based line numbers.
class LineMap {
public:
    explicit LineMap(std::string_view text)
    {
        for (std::size_t i = 0; i < text.size(); ++i)
            if (text[i] == '\n')
                newlines_.push_back(i);
    }
    unsigned line_of(std::ptrdiff_t offset) const
    {
        if (offset < 0)
            return 0;
        const auto it = std::lower_bound(newlines_.begin(), newlines_.end(), static_cast<std::size_t>(offset));
        return static_cast<unsigned>(it - newlines_.begin()) + 1;
    }

private:
    std::vector<std::size_t> newlines_;
};

class Loader {
public:
    Loader(std::string_view xml, const std::string& source, Policy& policy)
        : xml_(xml), source_(source), lines_(xml), base_dir_(fs::path(source).parent_path()), policy_(policy)
    {
    }

    void load()
    {
        // UTF-8 only, so that pugixml's offsets index this very buffer (line numbers).
        pugi::xml_document doc;
        const auto result = doc.load_buffer(xml_.data(), xml_.size(), pugi::parse_default, pugi::encoding_utf8);
        if (!result)
            throw ConfigError(source_, lines_.line_of(result.offset), "",
                              std::string("malformed XML: ") + result.description());

        const auto root = doc.document_element();
        if (std::string_view(root.name()) != "amtp-policy")
            fail(root, "the root element must be <amtp-policy>");
        attributes(root, {});
        for (const auto& child : root.children()) {
            if (!is_element(child))
                continue;
            const std::string_view name = child.name();
            if (name == "advertise")
                advertise(child);
            else if (name == "domain")
                domain(child);
            else if (name == "recipient")
                recipient(child);
            else if (name == "sender")
                sender(child);
            else if (name == "private-network")
                private_network(child);
            else if (name == "allow" || name == "deny")
                fail(child, "must be inside <advertise>, <domain> or <recipient>");
            else
                fail(child, "unknown element in <amtp-policy> (expected <advertise>, <domain>, <recipient>, "
                            "<sender> or <private-network>)");
        }
    }

private:
    unsigned line(const pugi::xml_node& node) const { return lines_.line_of(node.offset_debug()); }

    static std::string key(const pugi::xml_node& node) { return "<" + printable(node.name()) + ">"; }

    [[noreturn]] void fail(const pugi::xml_node& node, const std::string& message) const
    {
        throw ConfigError(source_, line(node), key(node), message);
    }

    // Elements are handled by the caller; text is an error (it would be a typo or a
    // value in the wrong place); comments, PIs and the declaration are not kept by
    // parse_default, and whitespace-only text is dropped.
    bool is_element(const pugi::xml_node& node) const
    {
        if (node.type() == pugi::node_element)
            return true;
        if (node.type() == pugi::node_pcdata || node.type() == pugi::node_cdata)
            throw ConfigError(source_, text_line(node), key(node.parent()),
                              "unexpected text " + in_quotes(trimmed(node.value())));
        return false;
    }

    // Text usually starts with the line break after the tag before it: report the
    // line where its first visible character is.
    unsigned text_line(const pugi::xml_node& node) const
    {
        auto offset = node.offset_debug();
        if (offset < 0)
            return 0;
        auto i = static_cast<std::size_t>(offset);
        while (i < xml_.size() && is_space(xml_[i]))
            ++i;
        return lines_.line_of(static_cast<std::ptrdiff_t>(i));
    }

    static bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

    static std::string trimmed(std::string_view text)
    {
        while (!text.empty() && is_space(text.front()))
            text.remove_prefix(1);
        while (!text.empty() && is_space(text.back()))
            text.remove_suffix(1);
        if (text.size() > 40)
            return std::string(text.substr(0, 40)) + "...";
        return std::string(text);
    }

    // Unknown and repeated attributes are errors: a typo must never silently pass.
    void attributes(const pugi::xml_node& node, std::initializer_list<const char*> allowed) const
    {
        std::set<std::string_view> seen;
        for (const auto& attribute : node.attributes()) {
            const std::string_view name = attribute.name();
            if (std::none_of(allowed.begin(), allowed.end(), [&](const char* a) { return name == a; })) {
                std::string expected;
                for (const char* a : allowed)
                    expected += (expected.empty() ? "" : ", ") + std::string(a);
                fail(node, "unknown attribute " + in_quotes(name) +
                               (expected.empty() ? " (it takes none)" : " (expected " + expected + ")"));
            }
            if (!seen.insert(name).second)
                fail(node, "attribute " + in_quotes(name) + " given twice");
        }
    }

    std::string required(const pugi::xml_node& node, const char* name) const
    {
        const auto attribute = node.attribute(name);
        if (!attribute)
            fail(node, std::string("missing attribute \"") + name + "\"");
        if (!*attribute.value())
            fail(node, std::string("empty attribute \"") + name + "\"");
        return attribute.value();
    }

    void no_children(const pugi::xml_node& node) const
    {
        for (const auto& child : node.children())
            if (is_element(child))
                fail(child, "unexpected inside " + key(node) + " (it takes no elements)");
    }

    // <allow mpc=.../> and <deny mpc=.../> in document order.
    DeclarationList declarations(const pugi::xml_node& node) const
    {
        std::vector<Declaration> items;
        for (const auto& child : node.children()) {
            if (!is_element(child))
                continue;
            const std::string_view name = child.name();
            if (name != "allow" && name != "deny")
                fail(child, "unknown element in " + key(node) + " (expected <allow> or <deny>)");
            attributes(child, {"mpc"});
            no_children(child);
            const auto text = required(child, "mpc");
            const auto pattern = MpcPattern::parse(text);
            if (!pattern)
                fail(child, "mpc=" + in_quotes(text) + ": " + mpc_problem(text, true));
            items.push_back(Declaration{name == "allow", *pattern});
        }
        return DeclarationList(std::move(items));
    }

    // A second entry for the same key is an error naming both lines: the file would
    // otherwise mean whichever entry a reader happened to look at.
    void unique(std::map<std::string, unsigned>& seen, const std::string& key, const pugi::xml_node& node,
                const std::string& what) const
    {
        const auto [it, inserted] = seen.emplace(key, line(node));
        if (!inserted)
            fail(node, "duplicate " + what + " " + in_quotes(key) + " (first on line " + std::to_string(it->second) + ")");
    }

    void advertise(const pugi::xml_node& node)
    {
        attributes(node, {});
        if (advertise_line_)
            fail(node, "only one <advertise> is allowed (first on line " + std::to_string(advertise_line_) + ")");
        advertise_line_ = line(node);
        policy_.advertise = declarations(node);
    }

    void domain(const pugi::xml_node& node)
    {
        attributes(node, {"name"});
        const auto text = required(node, "name");
        std::string why;
        const auto name = normalize_domain(text, why);
        if (!name)
            fail(node, "name=" + in_quotes(text) + ": " + why);
        unique(domain_lines_, *name, node, "domain");
        policy_.domains[*name] = declarations(node);
    }

    void recipient(const pugi::xml_node& node)
    {
        attributes(node, {"address"});
        const auto text = required(node, "address");
        std::string why;
        const auto address = normalize_address(text, why);
        if (!address)
            fail(node, "address=" + in_quotes(text) + ": " + why);
        unique(recipient_lines_, *address, node, "recipient");
        policy_.recipients[*address] = declarations(node);
    }

    void sender(const pugi::xml_node& node)
    {
        attributes(node, {"address", "mpc"});
        no_children(node);
        const auto text = required(node, "address");
        std::string why;
        const auto address = normalize_address(text, why);
        if (!address)
            fail(node, "address=" + in_quotes(text) + ": " + why);
        // A sender sends one concrete value (draft s6), so no "*" here.
        const auto mpc_text = required(node, "mpc");
        const auto value = parse_mpc(mpc_text);
        if (!value.value)
            fail(node, "mpc=" + in_quotes(mpc_text) + ": " + mpc_problem(mpc_text, false));
        unique(sender_lines_, *address, node, "sender");
        policy_.senders[*address] = *value.value;
    }

    std::string ca_path(const std::string& text) const
    {
        // Relative to the policy file, so that the file and its CAs move together.
        return (base_dir_ / text).lexically_normal().string();
    }

    void private_network(const pugi::xml_node& node)
    {
        attributes(node, {"name", "ca"});
        PrivateNetwork network;
        network.name = required(node, "name");
        // The name reaches log lines and trace headers.
        const auto name_char = [](char c) { return is_ldh(c) || (c >= 'A' && c <= 'Z') || c == '.' || c == '_'; };
        if (network.name.size() > 64 || !std::all_of(network.name.begin(), network.name.end(), name_char))
            fail(node, "name=" + in_quotes(network.name) + ": use up to 64 letters, digits, \".\", \"_\" and \"-\"");
        unique(network_lines_, lower(network.name), node, "private network");
        if (node.attribute("ca"))
            network.ca_files.push_back(ca_path(required(node, "ca")));

        for (const auto& child : node.children()) {
            if (!is_element(child))
                continue;
            const std::string_view name = child.name();
            if (name == "ca") {
                attributes(child, {"file"});
                no_children(child);
                network.ca_files.push_back(ca_path(required(child, "file")));
            } else if (name == "pin") {
                network.pins.push_back(pin(child));
            } else {
                fail(child, "unknown element in <private-network> (expected <ca> or <pin>)");
            }
        }
        if (network.ca_files.empty() && network.pins.empty())
            fail(node, "a private network needs a CA (ca=\"...\" or <ca file=\"...\"/>) or a <pin>");
        policy_.private_networks.push_back(std::move(network));
    }

    PinnedCertificate pin(const pugi::xml_node& node)
    {
        attributes(node, {"sha256", "from"});
        no_children(node);
        PinnedCertificate pin;
        const auto text = required(node, "sha256");
        const auto sha256 = normalize_sha256(text);
        if (!sha256)
            fail(node, "sha256=" + in_quotes(text) +
                           ": not a SHA-256 fingerprint (64 hex digits, or 32 colon-separated hex pairs)");
        pin.sha256 = *sha256;
        // One certificate in two places would make its network ambiguous.
        unique(pin_lines_, pin.sha256, node, "pin");

        // Required: a pinned self-signed certificate is valid only from the networks
        // listed (profile s7); "anywhere" must be written out as 0.0.0.0/0, ::/0.
        const auto from = required(node, "from");
        std::string item;
        std::istringstream in(from);
        for (char c; in.get(c);) {
            if (c == ',' || c == ' ' || c == '\t' || c == '\n' || c == '\r') {
                add_network(node, from, item, pin);
                item.clear();
            } else {
                item += c;
            }
        }
        add_network(node, from, item, pin);
        if (pin.from.empty())
            fail(node, "from=" + in_quotes(from) + ": no network listed");
        return pin;
    }

    void add_network(const pugi::xml_node& node, const std::string& from, const std::string& item,
                     PinnedCertificate& pin) const
    {
        if (item.empty())
            return;
        const auto network = IpNetwork::parse(item);
        if (!network)
            fail(node, "from=" + in_quotes(from) + ": " + in_quotes(item) +
                           " is not an IP network (address or address/prefix)");
        pin.from.push_back(*network);
    }

    std::string_view xml_;
    const std::string& source_;
    LineMap lines_;
    fs::path base_dir_;
    Policy& policy_;
    unsigned advertise_line_ = 0;
    std::map<std::string, unsigned> domain_lines_, recipient_lines_, sender_lines_, network_lines_, pin_lines_;
};

} // namespace

Policy Policy::load_file(const std::string& path)
{
    std::ifstream in(path, std::ios::binary);
    if (!in)
        throw ConfigError(path, 0, "", std::string("cannot open the policy file: ") + std::strerror(errno));
    std::ostringstream content;
    content << in.rdbuf();
    if (in.bad())
        throw ConfigError(path, 0, "", "cannot read the policy file");
    return load_string(content.str(), path);
}

Policy Policy::load_string(std::string_view xml, const std::string& source_name)
{
    Policy policy;
    policy.source = source_name;
    Loader(xml, source_name, policy).load();
    return policy;
}

const DeclarationList* Policy::rules_for(std::string_view recipient_address) const
{
    const auto key = lookup_key(recipient_address);
    if (const auto it = recipients.find(key); it != recipients.end())
        return &it->second;
    const auto at = key.rfind('@');
    if (at == std::string::npos)
        return nullptr;
    if (const auto it = domains.find(key.substr(at + 1)); it != domains.end())
        return &it->second;
    return nullptr;
}

bool Policy::recipient_allows(std::string_view recipient_address, const MpcValue& value) const
{
    const auto* rules = rules_for(recipient_address);
    return rules ? rules->allows(value) : true;
}

std::optional<MpcValue> Policy::sender_mpc(std::string_view sender_address) const
{
    const auto it = senders.find(lookup_key(sender_address));
    if (it == senders.end())
        return std::nullopt;
    return it->second;
}

} // namespace amtp
