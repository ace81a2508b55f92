# Redis stopped: 503 with Retry-After, then 200 once it is back; nothing
# Meta was told was accepted is lost, nothing retried is doubled
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Time::HiRes qw(sleep time);
use WaTest;
use WaBody qw(text_message messages_body);

my $t = WaTest->new;
# an append-only file, so that what was acknowledged survives the restart
my @aof = ('--appendonly', 'yes', '--appendfsync', 'always');
$t->start_redis(@aof);
# a timeout far longer than "at once" may take on a busy machine: a 503
# that waited for it is told apart from one that did not
$t->start_nginx(redis_timeout => '30s');

my @bodies = map { messages_body(messages => [ text_message("wamid.R$_", "m$_") ]) }
             1 .. 20;

my (%accepted, @refused);
for my $i (0 .. 4) {
    my $r = $t->post($bodies[$i]);
    is $r->{status}, 200, "before: body $i accepted";
    $accepted{$i} = 1;
}

$t->stop_redis;
ok $t->wait_log(qr/whatsapp redis: connection (?:to \S+ )?(?:lost|closed)/),
    'the loss is logged';

for my $i (5 .. 9) {
    my $t0 = time;
    my $r = $t->post($bodies[$i]);
    is $r->{status}, 503, "down: body $i refused with 503";
    is $r->{headers}{'retry-after'}, '5', 'Retry-After: 5';
    cmp_ok time - $t0, '<', 10, 'refused at once, not after the timeout';
    push @refused, $i;
}
ok $t->wait_log(qr/whatsapp webhook: .*redis/i), 'the 503s name Redis';

$t->start_redis(@aof);
my $deadline = time + 30;
my $r;
while (time < $deadline) {
    $r = $t->post($bodies[10]);
    last if $r->{status} == 200;
    sleep 0.1;
}
is $r->{status}, 200, 'after the restart: 200 again';
$accepted{10} = 1;

# Meta retries what was refused
for my $i (@refused) {
    is $t->post($bodies[$i])->{status}, 200, "retry of body $i: 200";
    $accepted{$i} = 1;
}

my @ids = map { $_->{msg_id} } $t->stream_events('wa:messages');
is_deeply [ sort @ids ], [ sort map { "wamid.R" . ($_ + 1) } keys %accepted ],
    'every accepted event present, once';

my $c = $t->status_counters;
cmp_ok $c->{redis_unavailable}, '>=', 5, 'refusals counted';
cmp_ok $c->{redis_connects}, '>=', 2, 'reconnect counted';

# Redis gone in the middle of a stream of requests: every answer is either
# 200 (and its event is in Redis) or 503 (and a retry lands it)
my (@ok, @retry);
for my $i (11 .. 19) {
    $t->stop_redis if $i == 15;
    $t->start_redis(@aof) if $i == 17;
    my $st = $t->post($bodies[$i])->{status};
    if ($st == 200) { push @ok, $i } else { push @retry, $i }
    sleep 0.05;
}
ok scalar @retry, 'some refused while down';
$deadline = time + 30;
for my $i (@retry) {
    my $st;
    while (time < $deadline) {
        $st = $t->post($bodies[$i])->{status};
        last if $st == 200;
        sleep 0.1;
    }
    is $st, 200, "retry $i accepted";
}
@ids = map { $_->{msg_id} } $t->stream_events('wa:messages');
is scalar @ids, 20, 'all 20 events, none lost, none doubled';

done_testing;
