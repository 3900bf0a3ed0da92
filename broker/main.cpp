// zguard: argv → subcommand. Everything else lives in the zguard_broker library.
#include <iostream>

#include <CLI/CLI.hpp>

#include "broker/cli/commands.hpp"
#include "broker/config/units.hpp"

namespace {

std::chrono::milliseconds DurationOrThrow(const std::string& text, const char* option) {
  const auto value = zguard::config::ParseDuration(text);
  if (!value) {
    throw CLI::ValidationError(option, "expected a duration such as 500ms or 5s, got " + text);
  }
  return *value;
}

int Main(int argc, char** argv) {
  CLI::App app{"zguard: a secured ZeroMQ Majordomo broker", "zguard"};
  app.set_version_flag("--version", std::string("zguard ") + ZGUARD_VERSION);
  app.set_help_all_flag("--help-all", "Show help for every subcommand");
  app.require_subcommand(1);

  std::string config_path = zguard::cli::DefaultConfigPath();
  auto* serve = app.add_subcommand("serve", "Run the broker");
  serve->add_option("-c,--config", config_path, "Config file")->capture_default_str();
  auto* check = app.add_subcommand("check", "Validate a config file and exit");
  check->add_option("-c,--config", config_path, "Config file")->capture_default_str();

  zguard::cli::CallOptions call_options;
  std::string call_timeout = "5s";
  auto* call = app.add_subcommand("call", "Send one request to a service and print the reply");
  call->add_option("--connect", call_options.connect,
                   "Broker client endpoint, e.g. "
                   "tcp://127.0.0.1:5555")
      ->required();
  call->add_option("-t,--timeout", call_timeout, "How long to wait for the reply")
      ->capture_default_str();
  call->add_option("service", call_options.service, "Service name")->required();
  call->add_option("body", call_options.body, "Request body frames");

  zguard::cli::EchoWorkerOptions echo_options;
  std::string echo_heartbeat = "2500ms";
  auto* echo = app.add_subcommand("echo-worker", "Run a worker that echoes every request");
  echo->add_option("--connect", echo_options.connect, "Broker worker endpoint")->required();
  echo->add_option("--service", echo_options.service, "Service to serve")->required();
  echo->add_option("--heartbeat", echo_heartbeat, "Heartbeat interval")->capture_default_str();
  echo->add_option("--count", echo_options.count, "Exit after this many requests (0: never)")
      ->capture_default_str();
  std::string echo_resolve = "10s";
  echo->add_flag("--each-address", echo_options.each_address,
                 "Connect to every address the --connect host resolves to, one worker each "
                 "(e.g. a Kubernetes headless Service), re-resolving as they change");
  echo->add_option("--resolve-interval", echo_resolve, "How often --each-address re-resolves")
      ->capture_default_str();

  for (auto* command : {call, echo}) {
    auto& flags = command == call ? call_options.security : echo_options.security;
    command->add_option("--server-key", flags.server_key,
                        "CURVE: the broker's public key (Z85, or a certificate file)");
    command->add_option("--cert", flags.cert, "CURVE: our secret certificate (NAME.key_secret)");
    command->add_option("--user", flags.user, "PLAIN: user name");
    command->add_option("--password-file", flags.password_file,
                        "PLAIN: file holding the password (mode 0600)");
  }

  zguard::cli::KeygenOptions keygen_options;
  auto* keygen = app.add_subcommand("keygen", "Write a new CURVE certificate pair");
  keygen->add_option("name", keygen_options.name, "Certificate name (NAME.key, NAME.key_secret)")
      ->required();
  keygen->add_option("--dir", keygen_options.dir, "Folder to write to")->capture_default_str();
  keygen
      ->add_option("--meta", keygen_options.meta,
                   "Metadata KEY=VALUE (name, roles, expires-at), repeatable")
      ->allow_extra_args(false);

  zguard::cli::PasswdOptions passwd_options;
  std::string passwd_roles;
  auto* passwd = app.add_subcommand(
      "passwd", "Set a user's password in a password file (password read from standard input)");
  passwd->add_option("file", passwd_options.file, "Password file")->required();
  passwd->add_option("user", passwd_options.user, "User name")->required();
  auto* roles_option =
      passwd->add_option("--roles", passwd_roles, "Comma-separated roles (default: keep)");

  zguard::cli::HealthOptions health_options;
  std::string health_timeout = "3s";
  auto* health = app.add_subcommand(
      "health", "Ask a running broker's /healthz (exit 0 when it answers 200); for health checks");
  health->add_option("-c,--config", config_path, "Config file whose metrics.listen is asked")
      ->capture_default_str();
  health->add_option("--address", health_options.address, "HOST:PORT to ask instead");
  health->add_option("--path", health_options.path, "HTTP path, e.g. /readyz")
      ->capture_default_str();
  health->add_option("-t,--timeout", health_timeout, "How long to wait")->capture_default_str();

  auto* help = app.add_subcommand("help", "Show this help");

  try {
    app.parse(argc, argv);
    if (help->parsed()) {
      // app.help() would describe the last parsed subcommand ("help" itself).
      std::cout << app.get_formatter()->make_help(&app, "zguard", CLI::AppFormatMode::Normal);
      return 0;
    }
    if (serve->parsed()) return zguard::cli::RunServe(config_path);
    if (check->parsed()) return zguard::cli::RunCheck(config_path);
    if (call->parsed()) {
      call_options.timeout = DurationOrThrow(call_timeout, "--timeout");
      return zguard::cli::RunCall(call_options);
    }
    if (health->parsed()) {
      health_options.config_path = config_path;
      health_options.timeout = DurationOrThrow(health_timeout, "--timeout");
      return zguard::cli::RunHealth(health_options);
    }
    if (keygen->parsed()) return zguard::cli::RunKeygen(keygen_options);
    if (passwd->parsed()) {
      if (roles_option->count() > 0) {
        std::vector<std::string> roles;
        std::size_t start = 0;
        while (start <= passwd_roles.size()) {
          const auto comma = std::min(passwd_roles.find(',', start), passwd_roles.size());
          if (comma > start) roles.push_back(passwd_roles.substr(start, comma - start));
          start = comma + 1;
        }
        passwd_options.roles = roles;
      }
      return zguard::cli::RunPasswd(passwd_options);
    }
    if (echo->parsed()) {
      echo_options.heartbeat = DurationOrThrow(echo_heartbeat, "--heartbeat");
      echo_options.resolve_interval = DurationOrThrow(echo_resolve, "--resolve-interval");
      return zguard::cli::RunEchoWorker(echo_options);
    }
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return Main(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "zguard: " << e.what() << '\n';
    return 1;
  }
}
