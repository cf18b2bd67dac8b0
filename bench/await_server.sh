# Sourced by the bench scripts that start torchbricks-server with --grpc-port 0.
#
#   port=$(await_server "$stdout_file" "$log_file" "$server_pid")
#
# Waits (up to 60 s) until the server has printed its gRPC port on stdout and logged " ready",
# and prints the port; exits the script, printing the server's log, if the server dies or
# does not become ready.
await_server() {
  local stdout_file=$1 log_file=$2 pid=$3 port=""
  for _ in $(seq 600); do
    port=$(sed -n 's/.*serving gRPC on [^ ]*:\([0-9]*\).*/\1/p' "$stdout_file")
    [[ -n $port ]] && grep -q " ready$" "$log_file" && { echo "$port"; return 0; }
    kill -0 "$pid" 2> /dev/null || { cat "$log_file" >&2; exit 1; }
    sleep 0.1
  done
  echo "the server did not become ready in 60 s" >&2
  exit 1
}
