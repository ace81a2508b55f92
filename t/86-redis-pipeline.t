# Many requests in one turn of nginx's loop: their commands do not all wait
# for the end of the turn; once 8 KB are queued they are written before the
# next command (src/nginx/ngx_http_whatsapp_redis.c).  Every request still
# gets its own answer, and when that early write finds Redis gone, every
# request of the turn answers 503 and the worker lives on.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use IO::Socket::INET;
use Time::HiRes qw(sleep time);
use WaTest;
use WaBody qw(text_message messages_body);

my $t = WaTest->new;
$t->start_redis;
$t->start_nginx(main => 'error_log ' . $t->dir . '/debug.log debug;');

is $t->post(messages_body(messages => [ text_message('wamid.PL0', 'x') ]))
    ->{status}, 200, 'warm-up body: 200';

my $worker = (split ' ', `pgrep -P ${\ $t->nginx_pid }`)[0];
ok $worker, "nginx worker $worker";

sub debug_log {
    open my $fh, '<', $t->dir . '/debug.log' or return '';
    local $/;
    return <$fh>;
}

# n requests that reach the worker in one turn: the connections are open
# (accepted and idle) before the worker is frozen, the requests are written
# while it is, and its next epoll_wait() returns them all
sub one_turn {
    my ($tag, $n, $between) = @_;
    my @socks = map {
        IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $t->port)
            or die "connect: $!"
    } 1 .. $n;
    sleep 0.3;
    kill 'STOP', $worker;
    for my $i (0 .. $#socks) {
        my $body = messages_body(messages => [
            text_message("wamid.$tag.$i", "$tag $i " . ('y' x 1500)) ]);
        my $sig = WaTest::sign($t->{secret}, $body);
        print { $socks[$i] } "POST /webhook HTTP/1.1\r\nHost: t\r\n"
            . "Content-Type: application/json\r\n"
            . "X-Hub-Signature-256: $sig\r\nConnection: close\r\n"
            . 'Content-Length: ' . length($body) . "\r\n\r\n$body";
    }
    $between->() if $between;
    kill 'CONT', $worker;
    my %status;
    for my $s (@socks) {
        local $/;
        my $r = <$s> // '';
        my ($code) = $r =~ m{^HTTP/1\.1 (\d+)};
        $status{$code // 'none'}++;
    }
    return \%status;
}

my $before = () = debug_log() =~ /writing \d+ bytes before the next command/g;
my $st = one_turn('PL', 16);
is_deeply $st, { 200 => 16 }, 'one turn of 16 requests: 16 answered 200';
my @early = debug_log() =~ /writing (\d+) bytes before the next command/g;
splice @early, 0, $before;
cmp_ok scalar @early, '>=', 2, 'their commands left in ' . (@early + 1)
    . ' writes, not one at the end of the turn';
ok !(grep { $_ < 8192 } @early), 'each early write carries 8 KB or more';

my %seen = map { $_->{msg_id} => 1 } $t->stream_events('wa:messages');
is scalar(grep { $seen{"wamid.PL.$_"} } 0 .. 15), 16,
    'every message of the turn is in the stream';
is $t->xlen('wa:messages'), 17, 'and nothing else';

# Redis killed while the worker is frozen: the turn's first write may still
# reach the socket, a later one fails; either way every request is told
$st = one_turn('GONE', 16, sub { $t->stop('redis', 'KILL') });
is_deeply $st, { 503 => 16 }, 'Redis gone during the turn: 16 answered 503';
ok kill(0, $worker), 'the worker lives on';
# hiredis answers the commands before it reports the loss: wait for the line
ok $t->wait_log(qr/whatsapp redis: connection lost/),
    'the log names the lost connection';

my $connects = () = $t->error_log =~ /whatsapp redis: connected/g;
$t->start_redis;
ok $t->wait_for(sub {
    (() = $t->error_log =~ /whatsapp redis: connected/g) > $connects }, 10),
    'nginx reconnects';
is $t->post(messages_body(messages => [ text_message('wamid.PL99', 'x') ]))
    ->{status}, 200, 'and accepts again';
unlike $t->error_log, qr/\[(alert|crit|emerg)\]/, 'no alert in the log';

done_testing;
