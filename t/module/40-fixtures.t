# every payload shape the repository carries (t/fixtures/payloads): the
# right events, on the right streams, none lost
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use JSON::PP;
use WaTest;

my $t = WaTest->new;
$t->start_redis;
$t->start_nginx;

my $json = JSON::PP->new->utf8;

# what the body must give, worked out from the payload alone
sub expected {
    my ($body) = @_;
    my %want = (messages => [], statuses => [], account => []);

    for my $entry (@{ $body->{entry} }) {
        for my $change (@{ $entry->{changes} }) {
            my ($field, $v) = @$change{qw(field value)};
            my $n = 0;
            my $add = sub {
                my ($stream, $kind, $item) = @_;
                push @{ $want{$stream} }, { kind => $kind, field => $field,
                                            waba => $entry->{id},
                                            item => $item };
                $n++;
            };

            if ($field eq 'messages') {
                $add->('messages', 'message', $_) for @{ $v->{messages} || [] };
                $add->('statuses', 'status', $_) for @{ $v->{statuses} || [] };
                $add->('account', 'error', $_) for @{ $v->{errors} || [] };
            } elsif ($field eq 'smb_message_echoes') {
                $add->('messages', $field, $_)
                    for @{ $v->{message_echoes} || [] };
            } elsif ($field eq 'history') {
                for my $h (@{ $v->{history} || [] }) {
                    for my $th (@{ $h->{threads} || [] }) {
                        $add->('messages', 'history', $_)
                            for @{ $th->{messages} || [] };
                    }
                }
            } elsif ($field eq 'user_preferences') {
                $add->('account', $field, $_)
                    for @{ $v->{user_preferences} || [] };
            }

            $add->('account', $field, $v) unless $n;
        }
    }
    return \%want;
}

my ($cases, $events) = (0, 0);
my %fields;

for my $case ($t->fixtures) {
    my ($file, $name, $data) = @$case;
    my $label = "$file/$name";

    $t->redis('FLUSHALL');
    my $r = $t->post(WaTest::meta_json($data));
    is $r->{status}, 200, "$label: 200" or diag $r->{content};

    my $want = expected($data);
    $fields{ $_->{field} }++
        for map { @{ $_->{changes} } } @{ $data->{entry} };

    for my $stream (qw(messages statuses account)) {
        my @got = $t->stream_events("wa:$stream");
        my @exp = @{ $want->{$stream} };
        is scalar @got, scalar @exp, "$label: " . scalar(@exp)
                                     . " on wa:$stream";

        for my $i (0 .. $#exp) {
            my $g = $got[$i] or next;
            my $e = $exp[$i];
            my $item = $e->{item};
            my $ok = 1;
            my @why;

            my $raw = eval { $json->decode($g->{raw}) };
            unless ($raw && eq_deeply_json($raw, $item)) {
                $ok = 0; push @why, 'raw differs';
            }
            for my $k (qw(kind field)) {
                next if ($g->{$k} // '') eq $e->{$k};
                $ok = 0; push @why, "$k=" . ($g->{$k} // 'undef');
            }
            if (($g->{waba_id} // '') ne $e->{waba}) {
                $ok = 0; push @why, 'waba_id';
            }
            unless (($g->{received_at} // '') =~ /^\d{13}$/) {
                $ok = 0; push @why, 'received_at';
            }
            unless (length($g->{event_id} // '')) {
                $ok = 0; push @why, 'event_id';
            }
            if ($stream ne 'account' && ref $item eq 'HASH') {
                if (($g->{msg_id} // '') ne ($item->{id} // '')) {
                    $ok = 0; push @why, 'msg_id';
                }
                if (defined $item->{timestamp}
                    && ($g->{ts} // '') ne $item->{timestamp})
                {
                    $ok = 0; push @why, 'ts';
                }
            }
            if ($stream eq 'messages' && $e->{kind} eq 'message') {
                for my $k (qw(from type)) {
                    next if ($g->{$k} // '') eq ($item->{$k} // '');
                    $ok = 0; push @why, $k;
                }
                if ($g->{event_id} ne $item->{id}) {
                    $ok = 0; push @why, 'event_id is not the wamid';
                }
            }
            if ($stream eq 'statuses') {
                for my $k (qw(status recipient_id)) {
                    next if ($g->{$k} // '') eq ($item->{$k} // '');
                    $ok = 0; push @why, $k;
                }
                if ($g->{event_id} ne "$item->{id}:$item->{status}") {
                    $ok = 0; push @why, 'event_id is not wamid:status';
                }
            }
            ok $ok, "$label: wa:$stream #$i" or diag join ', ', @why;
            $events++;
        }
    }
    $cases++;
}

# the fields a WhatsApp Business Account subscribes to, and one Meta has
# not announced yet
my @known = qw(messages calls smb_message_echoes history smb_app_state_sync
    user_preferences account_update account_alerts account_review_update
    business_capability_update phone_number_quality_update
    phone_number_name_update security flows partner_solutions
    payment_configuration_update message_template_status_update
    message_template_quality_update message_template_components_update
    template_category_update);
my @missing = grep { !$fields{$_} } @known;
is "@missing", '', 'a payload for each of the ' . scalar(@known) . ' fields';
my %is_known = map { $_ => 1 } @known;
ok((grep { !$is_known{$_} } keys %fields), 'and one field nobody announced');
cmp_ok $cases, '>=', 110, "$cases payload shapes sent";
diag "$events events checked";

my $c = $t->status_counters;
is $c->{events_appended}, $events, 'status page counted every append';
is $c->{unparsed} // 0, 0, 'nothing unparsed';

# compare decoded JSON; numbers compare as numbers
sub eq_deeply_json {
    my ($a, $b) = @_;
    return 0 if ref $a ne ref $b;
    if (ref $a eq 'HASH') {
        return 0 unless keys %$a == keys %$b;
        for (keys %$a) {
            return 0 unless exists $b->{$_} && eq_deeply_json($a->{$_}, $b->{$_});
        }
        return 1;
    }
    if (ref $a eq 'ARRAY') {
        return 0 unless @$a == @$b;
        eq_deeply_json($a->[$_], $b->[$_]) || return 0 for 0 .. $#$a;
        return 1;
    }
    return 1 if !defined $a && !defined $b;
    return 0 if !defined $a || !defined $b;
    if (ref $a) { return "$a" eq "$b" }     # JSON booleans
    return 1 if $a eq $b;
    no warnings 'numeric';
    return $a =~ /^-?[\d.eE+-]+$/ && $b =~ /^-?[\d.eE+-]+$/ && $a == $b;
}

done_testing;
