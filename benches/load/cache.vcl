# Contender `varnish` for CACHE=1 benches/load.sh: Varnish in front of the backend, caching
# every response for an hour (the backend sends no Cache-Control, so Varnish's default TTL,
# 2 minutes, would apply; 1h matches the other two caches). Everything else is Varnish's
# built-in VCL. @NAME@ placeholders are filled in by load.sh (sed).
vcl 4.1;

backend default {
    .host = "127.0.0.1";
    .port = "@BACKEND_PORT@";
}

sub vcl_backend_response {
    if (beresp.status == 200) {
        set beresp.ttl = 1h;
    }
}
