# Redis over TLS with what Debian has (hiredis 0.14 speaks no TLS): nginx's
# own stream module as the local TLS client, verifying Redis's certificate,
# on a unix socket that the module and the worker both use; Redis listens
# on its TLS port only.  A certificate that does not verify: 503, and the
# stream proxy's log says why.  The recipe is docs/runbook.md's.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use WaTest;
use WaBody qw(text_message messages_body);

my $t = WaTest->new(acl => 0);     # its own Redis: TLS only
# built in, or Debian's libnginx-mod-stream
my $stream = $t->load_own('stream');
plan skip_all => 'this nginx has no stream module '
    . '(apt-get install libnginx-mod-stream)' unless defined $stream;
plan skip_all => 'this nginx has no stream_ssl_module'
    unless $t->nginx_has('stream_ssl_module');
my $d = $t->dir;

# a CA of the test's own, and Redis's certificate for "redis.test"
for my $ca (qw(ca other-ca)) {
    system("openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=$ca "
           . "-keyout $d/$ca.key -out $d/$ca.pem 2>/dev/null") == 0
        or BAIL_OUT("openssl: cannot make $ca");
}
system("openssl req -newkey rsa:2048 -nodes -subj /CN=redis.test "
       . "-keyout $d/redis.key -out $d/redis.csr 2>/dev/null") == 0
    or BAIL_OUT('openssl: no request');
$t->write_file('san.ext', "subjectAltName=DNS:redis.test\n");
system("openssl x509 -req -in $d/redis.csr -CA $d/ca.pem -CAkey $d/ca.key "
       . "-CAcreateserial -days 1 -extfile $d/san.ext -out $d/redis.pem "
       . "2>/dev/null") == 0 or BAIL_OUT('openssl: no certificate');

my $tls = WaTest::free_port();
$t->spawn('redis', 'redis-server', '--port', 0, '--tls-port', $tls,
          '--bind', '127.0.0.1', '--tls-cert-file', "$d/redis.pem",
          '--tls-key-file', "$d/redis.key", '--tls-ca-cert-file',
          "$d/ca.pem", '--tls-auth-clients', 'no', '--save', '',
          '--appendonly', 'no', '--dir', $d);
WaTest::wait_port($tls) or BAIL_OUT('redis-server did not start');
my $cli = sub {
    open my $fh, '-|', 'redis-cli', '--tls', '--cacert', "$d/ca.pem",
        '--sni', 'redis.test', '-p', $tls, @_ or die;
    local $/;
    my $out = <$fh> // '';
    $out =~ s/\s+\z//;
    return $out;
};
is $cli->('PING'), 'PONG', 'Redis answers on its TLS port';

sub stream_conf {
    my ($ca) = @_;
    return <<"EOF2";
$stream
stream {
    server {
        listen unix:$d/redis.sock;
        proxy_pass 127.0.0.1:$tls;
        proxy_ssl on;
        proxy_ssl_verify on;
        proxy_ssl_trusted_certificate $d/$ca.pem;
        proxy_ssl_name redis.test;
        proxy_ssl_server_name on;
        proxy_ssl_session_reuse on;
    }
}
EOF2
}

$t->start_nginx(main => stream_conf('ca'), redis => "unix:$d/redis.sock");
my $r = $t->post(messages_body(messages => [ text_message('wamid.TLS1',
                                                          'over TLS') ]));
is $r->{status}, 200, 'a webhook through TLS: 200';
is $cli->('XLEN', 'wa:messages'), 1, 'the event is in Redis';

$t->start_worker('redis' => "unix:$d/redis.sock");
ok $t->wait_for(sub { $cli->('HGET', 'wa:contact:106540352242922:16505551234',
                             'messages_in') eq '1' }, 10),
   'the worker applied it through the same socket'
    or diag $t->worker_log;

# a certificate that the trusted CA did not sign: no connection
$t->stop('worker-w1');
$t->stop_nginx;
$t->start_nginx(main => stream_conf('other-ca'),
                redis => "unix:$d/redis.sock", no_wait => 1);
ok $t->wait_for(sub { $t->post(messages_body(messages => [
       text_message('wamid.TLS2', 'x') ]))->{status} == 503 }, 30),
   'an unverified certificate: 503';
ok $t->wait_log(qr/upstream SSL certificate verify error/, 30),
   'the stream proxy says why';
is $cli->('XLEN', 'wa:messages'), 1, 'nothing appended';

done_testing;
