# The messaging limit of a business portfolio on a real Redis Cluster,
# 12 partitions: two numbers of one WABA at TIER_250, in two partitions
# other than the WABA's, send 150 users each.  The users are reserved in
# the portfolio's partition before each number's pacing call: 250 sent,
# 50 deferred for tier_limit, lost 0, counted twice 0.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use FakeGraph;
use WaTest;
use WaCluster;
use WaBody qw(status_item change_body envelope);
use WaPartition qw(prefixes);

my $PARTS = 12;
my @prefix = prefixes($PARTS);
sub part_of { WaPartition::part_of($_[0], $PARTS) }

my $t = WaTest->new;
my $c = WaCluster->new($t, primaries => 3, replicas => 0);
my @nodes = $c->ports;
my $seeds = $c->seeds;
$c->start_nginx($PARTS);

my $g = FakeGraph->new(dir => $t->dir);
my $graph = $g->start;
$t->write_file('token', "EAAtoken-secret\n", 0600);
$t->start_worker(cluster => $seeds, partitions => $PARTS,
                 'token-file' => $t->dir . '/token', 'graph-url' => $graph,
                 rate => 1000, 'pair-interval-ms' => 0,
                 'tier-recheck-ms' => 1000);

# a WABA, and two of its numbers, in three different partitions
my $waba = '4001';
my @pn;
for (my $i = 0; @pn < 2; $i++) {
    my $pn = "1077$i";
    next if part_of($pn) == part_of($waba)
            || grep { part_of($_) == part_of($pn) } @pn;
    push @pn, $pn;
}
my ($pa, $pb, $pw) = map { $prefix[ part_of($_) ] } @pn, $waba;
ok $pa ne $pb && $pa ne $pw && $pb ne $pw,
   "the numbers in $pa and $pb, their WABA in $pw";

# a command on the node serving a partition's slot
sub on { $c->on(@_) }

for my $i (0, 1) {
    is $t->post(WaTest::meta_json(envelope('messages', {
        messaging_product => 'whatsapp',
        metadata => { display_phone_number => "1555$pn[$i]",
                      phone_number_id => $pn[$i] },
        statuses => [ status_item("wamid.$i", 'sent', ts => time) ] },
        waba => $waba)))->{status}, 200, "number $pn[$i]";
}
is $t->post(change_body('phone_number_quality_update', {
    display_phone_number => "1555$pn[0]", event => 'ONBOARDING',
    current_limit => 'TIER_250' }, time, waba => $waba))->{status}, 200,
    'the WABA at TIER_250';
ok $t->wait_for(sub {
        (on($pw, 'HGET', "$pw:waba:$waba", 'limit_users') // '') eq '250'
        && 2 == grep { (on($_->[0], 'HGET', "$_->[0]:phone:$_->[1]",
                           'waba_id') // '') eq $waba }
                     [$pa, $pn[0]], [$pb, $pn[1]] }),
   'applied: the limit in the WABA\'s partition, each number in its own';

# 150 users for each number, in each number's partition's outbox
my %ids;
for my $i (0, 1) {
    my $p = $i ? $pb : $pa;
    local $t->{outbox_key} = "$p:outbox";
    local $t->{redis_port} = $c->slot_owner(
        $c->cli($nodes[0], 'CLUSTER', 'KEYSLOT', $p));
    $ids{$p} = [ $t->outbox_batch(map { [
        phone_number_id => $pn[$i], to => sprintf('55%d1%07d', $i, $_),
        message => { type => 'template', template => {
            name => 'offer', language => { code => 'en_US' } } } ] }
        1 .. 150) ];
}
is scalar(map { @$_ } values %ids), 300, '300 entries in two outboxes';

my ($sent, $deferred, $twice);
sub tally {
    ($sent, $deferred, $twice) = (0, 0, 0);
    for my $p ($pa, $pb) {
        my %s;
        $s{ $_->{outbox_id} // '' }++ for do {
            local $t->{redis_port} = $c->slot_owner(
                $c->cli($nodes[0], 'CLUSTER', 'KEYSLOT', $p));
            $t->stream_events("$p:sent");
        };
        my %d = map { $_ => 1 } @{ on($p, 'ZRANGE', "$p:deferred", 0, -1) };
        $sent += grep { $s{$_} } @{ $ids{$p} };
        $twice += grep { ($s{$_} // 0) > 1 } @{ $ids{$p} };
        $deferred += grep { $d{$_} && !$s{$_} } @{ $ids{$p} };
    }
    return $sent + $deferred == 300;
}
ok $t->wait_for(\&tally, 60), 'every entry sent or deferred';
is $sent, 250, '250 sent';
is $deferred, 50, '50 deferred';
is 300 - $sent - $deferred, 0, 'lost 0';
is $twice, 0, 'sent twice 0';
is on($pw, 'ZCARD', "$pw:preach:$waba"), 250,
   "250 users reached, counted once each, in the portfolio's partition";
my %users;
$users{ $_->{json}{to} }++ for $g->requests;
is scalar(grep { $_ > 1 } values %users), 0,
   'the Graph API saw each user once';

done_testing;
