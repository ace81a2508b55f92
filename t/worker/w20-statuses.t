# the worker: outbound statuses that only move forward, template and
# variant trackers, opt-out by keyword and by user_preferences
use strict;
use warnings;
use utf8;
use lib 't/lib';
use Test::More;
use WaTest;
use WaBody qw(text_message status_item messages_body change_body);

my $t = WaTest->new;
$t->start_redis;
$t->start_nginx;
$t->start_worker;

my $PN = '106540352242922';
my $T = 1780000000;

sub statuses {
    my @items = map { status_item($_->[0], $_->[1], ts => $_->[2],
                                  to => $_->[3] // '5511000000001') } @_;
    is $t->post(messages_body(statuses => \@items))->{status}, 200,
        'statuses posted: ' . join ' ', map { $_->[1] } @_;
}

sub inbound {
    my ($user, $text, $ts, $id) = @_;
    my $b = messages_body(from => $user, messages =>
        [ text_message($id, $text, from => $user, ts => $ts) ]);
    is $t->post($b)->{status}, 200, "inbound '$text'";
}

sub settle { ok $t->wait_for(sub { $t->drained }), 'worker caught up' }

# read, then a late delivered, then a late sent: read stays
statuses([ 'wamid.A', 'read', $T + 20 ]);
statuses([ 'wamid.A', 'delivered', $T + 10 ], [ 'wamid.A', 'sent', $T ]);
settle();
my $m = $t->hash('wa:msg:wamid.A');
is $m->{status}, 'read', 'out of order: read wins';
is $m->{read_at}, $T + 20, 'read_at';
ok !exists $m->{delivered_at}, 'a late delivered changes nothing';
is $m->{recipient_id}, '5511000000001', 'recipient kept';
is $m->{phone_number_id}, $PN, 'number kept';
my $ttl = $t->redis('TTL', 'wa:msg:wamid.A');
ok $ttl > 30 * 86400, "kept past Meta's 30 days ($ttl s)";

# failed is final
statuses([ 'wamid.B', 'sent', $T ]);
my $b = messages_body(statuses => [ { %{ status_item('wamid.B', 'failed',
    ts => $T + 5, to => '5511000000001') },
    errors => [ { code => 131047, title => 'Re-engagement message' } ] } ]);
is $t->post($b)->{status}, 200, 'failed posted';
statuses([ 'wamid.B', 'delivered', $T + 9 ]);
settle();
$m = $t->hash('wa:msg:wamid.B');
is $m->{status}, 'failed', 'failed is final';
is $m->{error_code}, 131047, 'error code';
is $m->{sent_at}, $T, 'sent_at';

# statuses Meta may add later are kept, not ranked
statuses([ 'wamid.A', 'deleted', $T + 30 ]);
settle();
$m = $t->hash('wa:msg:wamid.A');
is $m->{status}, 'read', 'an unknown status does not move it';
is $m->{last_other_status}, 'deleted', 'but is recorded';

# template trackers: the sender records what it sent (wa_sent_1)
my $U = '5511000000002';
sub sent {
    my ($wamid, $user, $ts, $tpl, $var) = @_;
    $t->redis('FCALL', 'wa_sent_1', 0, 'wa', $wamid, $PN, $user, $ts,
              $tpl, 'pt_BR', $var);
}
sent('wamid.T1', $U, $T, 'promo', 'A');
sent('wamid.T2', '5511000000003', $T, 'promo', 'B');
sent('wamid.T3', '5511000000004', $T, 'promo', 'A');
statuses([ 'wamid.T1', 'sent', $T + 1, $U ],
         [ 'wamid.T1', 'delivered', $T + 2, $U ],
         [ 'wamid.T2', 'read', $T + 3, '5511000000003' ]);
# the status of T3 came before the sender's record: it still counts
statuses([ 'wamid.T4', 'delivered', $T + 3, '5511000000005' ]);
settle();
sent('wamid.T4', '5511000000005', $T, 'promo', 'B');
inbound($U, 'Quero saber mais', $T + 3600, 'wamid.R1');
settle();
my $p = $t->hash('wa:tstats:promo');
is $p->{sent}, 3, 'promo: 3 sent (T1, T2, T4)';
is $p->{delivered}, 3, 'promo: 3 delivered (read implies it)';
is $p->{read}, 1, 'promo: 1 read';
is $p->{replied}, 1, 'promo: 1 reply within 24 h of delivery';
is $t->hash('wa:tstats:promo:A')->{replied}, 1, 'variant A: the reply';
is $t->hash('wa:tstats:promo:B')->{delivered}, 2, 'variant B: 2 delivered';

# opt-out keyword, any case, accents, spaces
inbound($U, "  sáir \n", $T + 4000, 'wamid.R2');
settle();
my $c = $t->hash("wa:contact:$PN:$U");
is $c->{opted_out}, 1, "'  sáir ' opts out";
is $c->{opted_out_source}, 'keyword', 'by keyword';
is $c->{opted_out_at}, $T + 4000, 'at once';
is $t->hash('wa:tstats:promo:A')->{opted_out}, 1,
    'variant A: opted out after it';

inbound($U, 'Stop please', $T + 4100, 'wamid.R3');
settle();
is $t->hash("wa:contact:$PN:$U")->{opted_out}, 1, 'still out';
inbound($U, 'VOLTAR', $T + 4200, 'wamid.R4');
settle();
$c = $t->hash("wa:contact:$PN:$U");
is $c->{opted_out}, 0, "'VOLTAR' opts back in";
is $c->{opted_in_at}, $T + 4200, 'when';

inbound('5511000000009', 'Stop please', $T, 'wamid.R5');
settle();
ok !exists $t->hash("wa:contact:$PN:5511000000009")->{opted_out},
    'a sentence with a keyword in it is not a keyword';

# user_preferences: marketing stop / resume, newest wins
my $pref = sub {
    my ($value, $ts) = @_;
    change_body('user_preferences', {
        messaging_product => 'whatsapp',
        metadata => { display_phone_number => '15550783881',
                      phone_number_id => $PN },
        contacts => [ { wa_id => $U, profile => { name => 'X' } } ],
        user_preferences => [ { wa_id => $U, detail => 'd',
                                category => 'marketing_messages',
                                value => $value, timestamp => $ts } ] });
};
is $t->post($pref->('stop', $T + 5000))->{status}, 200, 'stop posted';
is $t->post($pref->('resume', $T + 4900))->{status}, 200, 'older resume posted';
settle();
$c = $t->hash("wa:contact:$PN:$U");
is $c->{marketing}, 'stop', 'marketing stop; an older resume ignored';
is $c->{marketing_at}, $T + 5000, 'when';
is $t->post($pref->('resume', $T + 6000))->{status}, 200, 'resume posted';
settle();
is $t->hash("wa:contact:$PN:$U")->{marketing}, 'resume', 'resumed';

done_testing;
