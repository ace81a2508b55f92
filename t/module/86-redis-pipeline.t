# Many requests in one turn of nginx's loop share FCALLs: a call takes the
# requests of the turn until it holds 32 KB; the next request sends it and
# has it written at once, before joining a new call
# (src/nginx/ngx_http_whatsapp_call.c).  Every request still gets its own
# answer, and its own count of duplicates; calls never mix locations; an
# error reply answers each request of the call 503; and when an early write
# finds Redis gone, every request of the turn answers 503 and the worker
# lives on.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use IO::Socket::INET;
use WaTest;
use WaBody qw(text_message messages_body);

# acl => 0: other stream prefixes than the ACL users' (test-acl)
my $t = WaTest->new(acl => 0);
$t->start_redis;
$t->start_nginx(main => 'error_log ' . $t->dir . '/debug.log debug;',
                server => <<EOF);
        location = /other {
            whatsapp_webhook;
            whatsapp_stream_prefix ot;
        }
EOF

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
# (accepted, none left in the listening socket's queue, and idle) before
# the worker is frozen, the requests are written while it is, and its next
# epoll_wait() returns them all
sub one_turn {
    my ($tag, $n, %opt) = @_;
    my $path = $opt{path} // sub { '/webhook' };
    my $id = $opt{id} // sub { $_[0] };
    my @socks = map {
        IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $t->port)
            or die "connect: $!"
    } 1 .. $n;
    $t->wait_for(sub { WaTest::accept_queue($t->port) == 0 }, 30)
        or die "nginx did not accept the connections";
    $t->freeze($worker);
    for my $i (0 .. $#socks) {
        my $body = messages_body(messages => [
            text_message('wamid.' . $tag . '.' . $id->($i),
                         "$tag $i " . ('y' x 3000)) ]);
        my $sig = WaTest::sign($t->{secret}, $body);
        print { $socks[$i] } 'POST ' . $path->($i) . " HTTP/1.1\r\nHost: t\r\n"
            . "Content-Type: application/json\r\n"
            . "X-Hub-Signature-256: $sig\r\nConnection: close\r\n"
            . 'Content-Length: ' . length($body) . "\r\n\r\n$body";
    }
    $opt{between}->() if $opt{between};
    $t->thaw($worker);
    my %status;
    for my $s (@socks) {
        local $/;
        my $r = <$s> // '';
        my ($code) = $r =~ m{^HTTP/1\.1 (\d+)};
        $status{$code // 'none'}++;
    }
    return \%status;
}

my $before = () = debug_log() =~ /a call of \d+ bytes is written now/g;
my $calls_before = () = debug_log() =~ /events of \d+ requests sent to redis/g;
my $st = one_turn('PL', 16);
is_deeply $st, { 200 => 16 }, 'one turn of 16 requests: 16 answered 200';
my @early = debug_log() =~ /a call of (\d+) bytes is written now/g;
splice @early, 0, $before;
cmp_ok scalar @early, '>=', 2, 'their calls left in ' . (@early + 1)
    . ' writes, not one at the end of the turn';
ok !(grep { $_ < 32768 } @early), 'each early write carries 32 KB or more';
my @calls = debug_log() =~ /(\d+) events of (\d+) requests sent to redis/g;
splice @calls, 0, 2 * $calls_before;
my @sizes = map { $calls[2 * $_ + 1] } 0 .. $#calls / 2;
my $total = 0;
$total += $_ for @sizes;
is $total, 16, 'the calls carry the 16 requests, each once';
cmp_ok scalar @sizes, '<', 16, scalar(@sizes) . ' calls for 16 requests ('
    . join(' ', @sizes) . ')';
ok !(grep { $_ > 5 } @sizes),
    'no call takes a request once it holds 32 KB (5 of these 6.5 KB bodies)';

my %seen = map { $_->{msg_id} => 1 } $t->stream_events('wa:messages');
is scalar(grep { $seen{"wamid.PL.$_"} } 0 .. 15), 16,
    'every message of the turn is in the stream';
is $t->xlen('wa:messages'), 17, 'and nothing else';

# two locations in one turn: a call never mixes them, each request's events
# go to its own location's streams
my $calls_mx = () = debug_log() =~ /requests sent to redis/g;
$st = one_turn('MX', 8, path => sub { $_[0] % 2 ? '/other' : '/webhook' });
is_deeply $st, { 200 => 8 }, 'a turn of two locations: 8 answered 200';
is((() = debug_log() =~ /requests sent to redis/g) - $calls_mx, 8,
   'in 8 calls, one per change of location');
is_deeply [ sort map { $_->{msg_id} } $t->stream_events('ot:messages') ],
    [ map { "wamid.MX.$_" } 1, 3, 5, 7 ], 'the odd ones in ot:messages';
is scalar(grep { $_->{msg_id} =~ /^wamid\.MX\.[0246]$/ }
          $t->stream_events('wa:messages')), 4,
    'the even ones in wa:messages';

# Redis killed while the worker is frozen: the turn's first write may still
# reach the socket, a later one fails; either way every request is told
# the same message twice in one call: appended once, both answered 200,
# and the second counted a duplicate
my $c0 = $t->status_counters;
$st = one_turn('DUP', 2, id => sub { 0 });
is_deeply $st, { 200 => 2 }, 'a redelivery in the same turn: both 200';
is((debug_log() =~ /(\d+) events of (\d+) requests sent to redis/g)[-1], 2,
   'in one call');
my $c1 = $t->status_counters;
is $c1->{events_appended} - $c0->{events_appended}, 1, 'appended once';
is $c1->{events_duplicate} - $c0->{events_duplicate}, 1,
    'the other counted a duplicate';
is scalar(grep { $_->{msg_id} eq 'wamid.DUP.0' }
          $t->stream_events('wa:messages')), 1, 'one entry in the stream';

# an error for a call: each of its requests answered 503, each logged
$t->redis('FUNCTION', 'LOAD', 'REPLACE', "#!lua name=wa_ingest_3\n"
    . "redis.register_function('wa_ingest_3', function() "
    . "return redis.error_reply('ERR refused by the test') end)");
my $errs = () = $t->error_log =~ /redis answered "ERR refused by the test"/g;
$st = one_turn('ERR', 4);
is_deeply $st, { 503 => 4 }, 'an error reply to the calls: 4 answered 503';
is((() = $t->error_log =~ /redis answered "ERR refused by the test"/g)
   - $errs, 4, 'one log line per request');
is scalar(grep { $_->{msg_id} =~ /^wamid\.ERR\./ }
          $t->stream_events('wa:messages')), 0, 'nothing appended';
$t->redis('FUNCTION', 'DELETE', 'wa_ingest_3');
ok $t->wait_for(sub { $t->post(messages_body(messages => [
        text_message('wamid.ERR.back', 'x') ]))->{status} == 200 }, 30),
    'the module loads its own function again';

$st = one_turn('GONE', 16, between => sub { $t->stop('redis', 'KILL') });
is_deeply $st, { 503 => 16 }, 'Redis gone during the turn: 16 answered 503';
ok kill(0, $worker), 'the worker lives on';
# hiredis answers the commands before it reports the loss: wait for the line
ok $t->wait_log(qr/whatsapp redis: connection to \S+ lost/),
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
