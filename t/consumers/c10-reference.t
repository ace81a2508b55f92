# the reference consumers (examples/consumers: Python with python3-redis,
# Node with ioredis) against the real stack: signed webhooks through nginx
# into wa:messages, two consumers of one group, one SIGKILLed mid-batch;
# every event handled once, none twice, a redelivery skipped by event_id, a
# newer format left pending, SIGTERM a clean stop
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use File::Spec;
use POSIX qw(WNOHANG);
use WaTest;
use WaBody qw(messages_body text_message);

my $node_modules = File::Spec->rel2abs($ENV{WA_NODE_MODULES}
    || 'build/consumers-node/node_modules');

my %consumer = (
    python => [ '/usr/bin/python3', 'examples/consumers/python/wa_consumer.py' ],
    node => [ 'node', 'examples/consumers/node/wa-consumer.js' ],
);

ok -d "$node_modules/ioredis", "ioredis installed in $node_modules "
    . '(make consumers)' or BAIL_OUT('no ioredis: make consumers');

my $t = WaTest->new;
$t->start_redis;
$t->start_nginx;

# 400 messages from 20 users, 20 to a webhook, as Meta batches them
my (@wamids, @status);
for my $post (0 .. 19) {
    my @m = map { text_message("wamid.ref.$post.$_", "hello $_",
                               from => "55119000000$post") } 0 .. 19;
    push @wamids, map { $_->{id} } @m;
    push @status, $t->post(messages_body(messages => \@m))->{status};
}
is "@status", join(' ', (200) x 20), '20 webhooks: 200';
is $t->xlen('wa:messages'), 400, '400 events in wa:messages';

sub group_info { $t->group('wa:messages', $_[0]) }

sub pending_of { $t->pending_of('wa:messages', @_) }

sub start {
    my ($lang, $name, @extra) = @_;
    local $ENV{NODE_PATH} = $node_modules;
    return $t->spawn("$lang-$name", @{ $consumer{$lang} },
        '--redis', '127.0.0.1:' . $t->redis_port, '--stream', 'wa:messages',
        '--group', "ref-$lang", '--consumer', $name, '--record',
        "handled:$lang", '--count', 50, '--claim-idle-ms', 800, @extra);
}

sub log_of {
    my ($lang, $name) = @_;
    open my $fh, '<', $t->dir . "/$lang-$name.out" or return '';
    local $/;
    return <$fh>;
}

for my $lang (qw(python node)) {
    my $rec = "handled:$lang";
    my $group = "ref-$lang";

    # a slow handler, so that a batch of 50 takes half a second
    my $a = start($lang, 'a', '--delay-ms', 10);
    ok $t->wait_for(sub { ($t->redis('HLEN', $rec) // 0) >= 100 }, 20),
        "$lang: consumer a handles";
    my $b = start($lang, 'b', '--delay-ms', 10);
    # frozen while it holds a batch (seen while it cannot finish it)
    my $left = 0;
    for (1 .. 20) {
        $t->wait_for(sub { pending_of($group, 'a') > 0 }, 30);
        $t->freeze($a);
        last if ($left = pending_of($group, 'a')) > 0;
        $t->thaw($a);
    }
    ok $left > 0, "$lang: a holds a batch in hand";
    $t->stop("$lang-a", 'KILL');
    $left = pending_of($group, 'a');
    cmp_ok $left, '>', 0, "$lang: a SIGKILLed mid-batch, $left entries "
        . 'pending for it';

    ok $t->wait_for(sub { ($t->redis('HLEN', $rec) // 0) == 400 }, 30),
        "$lang: b took a's entries over: 400 handled";
    my %count = %{ $t->hash($rec) };
    is_deeply [ sort keys %count ], [ sort @wamids ],
        "$lang: every event handled";
    is scalar(grep { $count{$_} != 1 } keys %count), 0,
        "$lang: none handled twice";
    ok $t->wait_for(sub { group_info($group)->{pending} == 0 }, 30),
        "$lang: nothing left pending";
    like log_of($lang, 'b'), qr/took over \d+ entries a dead consumer left/,
        "$lang: b says it took entries over";

    # Meta's redelivery after the dedupe window: a new entry, same event_id
    my ($first) = $t->stream('wa:messages');
    $t->redis('XADD', 'wa:messages', '*', %{ $first->[1] });
    ok $t->wait_for(sub { group_info($group)->{lag} == 0
                          && group_info($group)->{pending} == 0 }, 10),
        "$lang: a redelivered event read and acknowledged";
    is $t->redis('HGET', $rec, $first->[1]{event_id}), 1,
        "$lang: ... and not handled again";

    # a format this consumer does not know: left for one that does
    $t->redis('XADD', 'wa:messages', '*', %{ $first->[1] }, v => 2,
              event_id => "wamid.v2.$lang");
    ok $t->wait_for(sub { log_of($lang, 'b') =~ /v=2; this consumer knows/ },
                    10), "$lang: an entry of v=2 is said to be too new";
    is group_info($group)->{pending}, 1, "$lang: ... and left pending";
    ok !$t->redis('HEXISTS', $rec, "wamid.v2.$lang"), "$lang: ... unhandled";

    # SIGTERM: a clean stop
    kill 'TERM', $b;
    my $status;
    ok $t->wait_for(sub { my $w = waitpid($b, WNOHANG);
                          $status = $? if $w == $b; $w == $b }, 10),
        "$lang: SIGTERM stops it";
    delete $t->{pids}{"$lang-b"};
    is $status, 0, "$lang: exit 0";
    like log_of($lang, 'b'), qr/stopped: handled \d+, skipped [1-9]/,
        "$lang: with what it handled and skipped";

    # clean the v=2 entry for the next consumer's group (it reads from 0)
    $t->redis('XDEL', 'wa:messages', ($t->stream('wa:messages'))[-1][0]);
}

done_testing;
