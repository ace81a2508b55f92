# Beside what a fleet's nginx already serves: Debian's lua module (and its
# ndk) and the stream module loaded in the same nginx; the webhook over
# HTTP/1.1 and over HTTP/2 (h2c with prior knowledge, as a proxy in front
# speaks it), where too 200 comes only once Redis acknowledged the append;
# and, in a binary built --with-http_v3_module (nginx >= 1.25), a server
# that also listens quic, its TCP side serving HTTP/1.1 and HTTP/2 over
# TLS (bookworm's curl has no HTTP/3 client).
use strict;
use warnings;
use lib 't/lib';
use POSIX qw(WNOHANG);
use Test::More;
use WaTest;
use WaBody qw(text_message messages_body);

my $t = WaTest->new;
my $d = $t->dir;
my $redis = $t->start_redis;

# Debian's lua module is built for Debian's nginx, and only loads there
my $mods = '/usr/lib/nginx/modules';
my $debian = $t->nginx_V =~ m{--modules-path=\Q$mods\E(?:\s|$)};
my @lua = map { "$mods/$_.so" } qw(ndk_http_module ngx_http_lua_module);
my $lua = !$debian ? 'lua: the nginx under test is not Debian\'s, for '
                     . 'which libnginx-mod-http-lua is built'
        : grep({ !-f } @lua) ? 'lua: apt-get install libnginx-mod-http-lua'
        : '';
my $stream = $t->load_own('stream');

# HTTP/2 on a listener: "http2 on" since 1.25.1, "listen ... http2" before
my $h2on = ($t->nginx_test($t->nginx_conf(
    server => 'http2 on;')))[0] == 0;
my $v3 = $t->nginx_has('http_v3_module');

my ($h2, $sp, $q) = map { WaTest::free_port() } 1 .. 3;
my $main = join "\n", ($lua ? () : map { "load_module $_;" } @lua),
    defined $stream ? ($stream, 'stream {',
        "    server { listen 127.0.0.1:$sp; return \"stream here\\n\"; }",
        '}') : ();
my $http = <<"EOF";
    server {
        listen 127.0.0.1:$h2@{[ $h2on ? ";\n        http2 on" : ' http2' ]};
        location = /webhook { whatsapp_webhook; }
    }
EOF
if ($v3) {
    system("openssl req -x509 -newkey rsa:2048 -nodes -days 1 "
           . "-subj /CN=localhost -keyout $d/tls.key -out $d/tls.pem "
           . '2>/dev/null') == 0 or BAIL_OUT('openssl: no certificate');
    $http .= <<"EOF";
    server {
        listen 127.0.0.1:$q ssl;
        listen 127.0.0.1:$q quic reuseport;
        http2 on;
        ssl_certificate $d/tls.pem;
        ssl_certificate_key $d/tls.key;
        add_header Alt-Svc 'h3=":$q"; ma=60' always;
        location = /webhook { whatsapp_webhook; }
    }
EOF
}
$t->start_nginx(main => $main, http => $http,
    $lua ? () : (
        location => '    header_filter_by_lua_block '
                    . '{ ngx.header["X-Lua"] = "seen" }',
        server => '        location = /lua { content_by_lua_block '
                  . '{ ngx.say("lua here") } }'));

# curl, for HTTP/2 and TLS: "status version" and the response's headers
sub curl {
    my ($url, $body, @args) = @_;
    if (defined $body) {
        $t->write_file('post.json', $body);
        push @args, '--data-binary', "\@$d/post.json",
            '-H', 'Content-Type: application/json',
            '-H', 'X-Hub-Signature-256: ' . WaTest::sign($t->{secret}, $body);
    }
    open my $c, '-|', 'curl', '-s', '-k', '-o', "$d/curl.out",
        '-D', "$d/curl.head", '-w', '%{http_code} %{http_version}', @args,
        $url or die "curl: $!";
    local $/;
    my $out = <$c>;
    open my $fh, '<', "$d/curl.head";
    return ($out, scalar <$fh> // '');
}

my $n = 0;
sub body { messages_body(messages => [ text_message('wamid.N' . ++$n, 'x') ]) }
my $challenge = '/webhook?hub.mode=subscribe&hub.verify_token='
    . "$t->{token}&hub.challenge=4242";

# --- HTTP/1.1, with the neighbours loaded ----------------------------------

my $r = $t->get($challenge);
is "$r->{status} $r->{content}", '200 4242', 'HTTP/1.1: the challenge';
$r = $t->post(body());
is $r->{status}, 200, 'HTTP/1.1: a signed POST, 200';
is $t->xlen('wa:messages'), 1, '... its event appended';
$r = $t->post(body(), headers => { 'X-Hub-Signature-256' => 'sha256=00' });
is $r->{status}, 403, 'a bad signature: 403';

SKIP: {
    skip $lua, 2 if $lua;
    is $r->{headers}{'x-lua'}, 'seen',
        "lua's header filter runs on the module's responses";
    is $t->get('/lua')->{content}, "lua here\n", 'lua serves its location';
}

SKIP: {
    skip 'this nginx has no stream module', 1 unless defined $stream;
    my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$sp");
    is $s && <$s>, "stream here\n", 'the stream module serves its port';
}

# --- HTTP/2 (h2c) ------------------------------------------------------------

my $h2url = "http://127.0.0.1:$h2";
my ($res) = curl("$h2url$challenge", undef, '--http2-prior-knowledge');
is $res, '200 2', 'HTTP/2: the challenge';
($res) = curl("$h2url/webhook", body(), '--http2-prior-knowledge');
is $res, '200 2', 'HTTP/2: a signed POST, 200';
is $t->xlen('wa:messages'), 2, '... its event appended';

# Redis frozen: the HTTP/2 request waits for the ack it cannot have yet
$t->freeze('redis');
my $held = body();
my $pid = fork // die "fork: $!";
if (!$pid) {
    my ($out) = curl("$h2url/webhook", $held, '--http2-prior-knowledge');
    $t->write_file('h2.result', $out);
    POSIX::_exit(0);
}
ok $t->wait_for(sub { WaTest::tcp_queued($redis) > 0 }),
    'HTTP/2: the append is on its way to the frozen Redis';
is waitpid($pid, WNOHANG), 0, '... and no answer yet';
$t->thaw('redis');
waitpid $pid, 0;
open my $fh, '<', "$d/h2.result";
is scalar <$fh>, '200 2', '... 200 once Redis acknowledged it';
is $t->xlen('wa:messages'), 3, '... its event appended';

# --- a server that also listens quic ---------------------------------------

SKIP: {
    skip 'this nginx is built without --with-http_v3_module '
         . '(nginx >= 1.25)', 5 unless $v3;
    my $udp = do {
        open my $u, '<', '/proc/net/udp' or die;
        local $/;
        <$u> =~ /0100007F:\Q@{[sprintf '%04X', $q]}\E /;
    };
    ok $udp, "the quic listener is bound (udp $q)";
    my $tls = "https://127.0.0.1:$q";
    my ($out, $head) = curl("$tls/webhook", body(), '--http1.1');
    is $out, '200 1.1', 'HTTPS, HTTP/1.1 beside quic: 200';
    like $head, qr/^alt-svc: h3=":$q"/mi, '... HTTP/3 advertised';
    ($out) = curl("$tls/webhook", body(), '--http2');
    is $out, '200 2', 'HTTPS, HTTP/2 beside quic: 200';
    is $t->xlen('wa:messages'), 5, '... both events appended';
}

# --- Redis away: 503 on every listener ---------------------------------------

$t->stop_redis;
($res, my $head) = curl("$h2url/webhook", body(), '--http2-prior-knowledge');
is $res, '503 2', 'HTTP/2, Redis stopped: 503';
like $head, qr/^retry-after: 5/mi, '... with Retry-After';
is $t->post(body())->{status}, 503, 'HTTP/1.1, Redis stopped: 503';

done_testing;
