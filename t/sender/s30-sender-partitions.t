# the sender with partitions: two wa-relayd send one business number's
# outbox, the number's pace held in Redis for both (at most --rate a
# second between them); the governor reads the number's WABA state from
# the WABA's partition (a paused template defers); every entry sent once.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Time::HiRes qw(time);
use FakeGraph;
use WaTest;
use WaPartition qw(prefixes);

my $PARTS = 4;
my @prefix = prefixes($PARTS);

my $t = WaTest->new;
$t->start_redis;
my $g = FakeGraph->new(dir => $t->dir);
my $graph = $g->start;
$t->write_file('token', "EAAtoken-secret\n", 0600);

# a number and its WABA in two different partitions
my ($pn, $waba) = ('106540352242922', undef);
for my $i (1 .. 100) {
    next if part_of("2029$i") == part_of($pn);
    $waba = "2029$i";
    last;
}
my $pp = $prefix[ part_of($pn) ];
my $pw = $prefix[ part_of($waba) ];
isnt $pp, $pw, "the number in $pp, its WABA in $pw";

# what the worker would have derived from Meta's events
$t->redis('HSET', "$pp:phone:$pn", 'waba_id', $waba,
          'display_phone_number', '15550783881');
$t->redis('HSET', "$pw:template:$waba:promo:en_US", 'status', 'PAUSED',
          'paused_until', int(time) + 3600);

my $RATE = 10;
for my $w (qw(w1 w2)) {
    $t->start_worker(consumer => $w, partitions => $PARTS,
                     'token-file' => $t->dir . '/token', 'graph-url' => $graph,
                     rate => $RATE, 'max-inflight' => 2,
                     'pair-interval-ms' => 0, 'stats-interval-ms' => 100);
}
ok $t->wait_for(sub { $t->hash('wa:partitions')->{count} }, 10),
   'the workers are up';

sub template {
    { type => 'template', template => { name => $_[0],
                                        language => { code => 'en_US' } } }
}

local $t->{outbox_key} = "$pp:outbox";
my ($paused) = $t->outbox_batch([ phone_number_id => $pn,
                                  to => '5511000009999',
                                  message => template('promo') ]);
my @ids = $t->outbox_batch(map { [ phone_number_id => $pn,
                                   to => sprintf('5511000001%03d', $_),
                                   message => template('rate') ] } 1 .. 60);
is scalar @ids, 60, '60 entries for one number in its partition\'s outbox';

ok $t->wait_for(sub { $t->xlen("$pp:sent") >= 60 }, 30), '60 sent'
    or diag $t->worker_log;
my @sent = $t->stream_events("$pp:sent");
my %once;
$once{ $_->{outbox_id} }++ for @sent;
is scalar(grep { ($once{$_} // 0) == 1 } @ids), 60, 'each once';

my @bt = sort { $a <=> $b } map { $_->{t} } grep {
    ($_->{json}{template}{name} // '') eq 'rate' } $g->requests;
is scalar @bt, 60, '60 requests at the Graph API';
my ($rate, $max) = FakeGraph::pace(@bt);
ok $max <= $RATE + 1, "two senders, one pace: at most $RATE in any second "
   . "(max $max)";
diag sprintf 'two workers at --rate %d for one number: %.1f/s sustained, '
    . '%d in the busiest second', $RATE, $rate, $max;

# both took part: each has its own counters in the partition, written
# every --stats-interval-ms: once they add up to the 60
my %by;
$t->wait_for(sub {
    %by = map { $_ => $t->hash("$pp:sender:$_")->{sent} // 0 } qw(w1 w2);
    $by{w1} + $by{w2} == 60;
});
ok $by{w1} > 0 && $by{w2} > 0, "both workers sent: $by{w1} and $by{w2}";

ok !grep({ ($_->{json}{template}{name} // '') eq 'promo' } $g->requests),
   'the paused template was not sent';
ok $t->redis('ZSCORE', "$pp:deferred", $paused),
   'it waits in the deferred set: the WABA\'s state was read from its '
   . 'partition';

done_testing;

sub part_of { WaPartition::part_of($_[0], $PARTS) }
